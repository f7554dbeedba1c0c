"""The one request model every provider adapter translates from.

Defaults are ours and explicit: providers disagree on several (``generate_audio`` is false on
RunPod and true on WaveSpeed/JieKou/Novita, docs/providers.md §2.8), so adapters always send them.
Range rules that differ per provider live in ``validation.py``; this model only fixes types.
"""

from __future__ import annotations

from enum import Enum

from pydantic import BaseModel, ConfigDict, Field


class AspectRatio(str, Enum):
    R21_9 = "21:9"
    R16_9 = "16:9"
    R4_3 = "4:3"
    R1_1 = "1:1"
    R3_4 = "3:4"
    R9_16 = "9:16"
    ADAPTIVE = "adaptive"


class Resolution(str, Enum):
    P480 = "480p"
    P720 = "720p"
    P1080 = "1080p"


class ServiceTier(str, Enum):
    DEFAULT = "default"
    FLEX = "flex"


class GenerationRequest(BaseModel):
    """What the user asks for, independent of provider.

    ``image``/``last_image`` are references: a local path, an ``http(s)://`` URL, or an fsspec URL
    (``s3://...``). How each reaches a provider (data URI or URL) is decided per provider.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", use_enum_values=True, validate_default=True)

    prompt: str
    image: str
    last_image: str | None = None
    duration: int = 5
    resolution: Resolution = Resolution.P720
    aspect_ratio: AspectRatio = AspectRatio.ADAPTIVE
    generate_audio: bool = False
    camera_fixed: bool = False
    seed: int = -1
    # Extras only some providers accept (JieKou, Novita); None = not sent.
    service_tier: ServiceTier | None = None
    execution_expires_after: int | None = Field(default=None)
    watermark: bool | None = None

    def latency_shape(self) -> str:
        """What a task's duration at a provider depends on (e.g. ``480p/4s/silent``): its poll schedule's key."""
        audio = "audio" if self.generate_audio else "silent"
        tier = f"/{self.service_tier}" if self.service_tier else ""
        return f"{self.resolution}/{self.duration}s/{audio}{tier}"

    def wire_values(self) -> tuple:
        """The values of ``WIRE_FIELDS``, in that order: what shapes the generated clip (the fingerprint's)."""
        return tuple(getattr(self, name) for name in WIRE_FIELDS)


# Every request field but the images: what shapes the generated clip (clip/prepare.py's fingerprint).
WIRE_FIELDS = tuple(name for name in GenerationRequest.model_fields if name not in ("image", "last_image"))
