"""Prompt files: ``prompts/<key>.yaml``, validated on load, versioned by what reaches the provider.

The data version hashes the normalised request-shaping fields only. Comments, key order, quoting and
the ``images`` globs (which choose partitions, not pixels) do not change it, so editing them marks
nothing outdated; editing the text or a generation parameter marks exactly this prompt's clips.
"""

from __future__ import annotations

import fnmatch
import functools
import hashlib
import json
import re
from collections.abc import Callable

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from seedance_pipeline.core import model_spec
from seedance_pipeline.core.errors import SeedanceError
from seedance_pipeline.core.keys import key_problem
from seedance_pipeline.core.request import AspectRatio, Resolution, ServiceTier
from seedance_pipeline.providers import PROVIDERS

AUTO = "auto"  # the cheapest configured provider that accepts the request
PROVIDER_CHOICES = (*PROVIDERS, AUTO)  # from the registry: a new adapter is a new choice


class PromptError(SeedanceError):
    def __init__(self, file: str, field: str, value, rule: str):
        self.file, self.field, self.value, self.rule = file, field, value, rule
        super().__init__(f"{file}: {field}={value!r}: {rule}")


class PromptSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_enum_values=True, validate_default=True)

    text: str = Field(min_length=1)
    images: list[str] = Field(default_factory=lambda: ["*"], min_length=1)
    provider: str = AUTO
    duration: int = Field(default=5, ge=model_spec.MIN_DURATION_S, le=model_spec.MAX_DURATION_S)
    resolution: Resolution = Resolution.P720
    aspect_ratio: AspectRatio = AspectRatio.ADAPTIVE
    generate_audio: bool = False
    camera_fixed: bool = False
    seed: int = Field(default=-1, ge=-1)
    last_image: str | None = None  # an image key, or an http(s) URL
    service_tier: ServiceTier | None = None
    # The task's deadline in seconds from its creation (JieKou, Novita, ModelArk): a flex task past it expires
    # unbilled instead of finishing after nobody waits for it. Range checked per provider (providers/validation.py).
    execution_expires_after: int | None = None

    @field_validator("text")
    @classmethod
    def _text_not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must not be blank")
        return v

    @field_validator("provider")
    @classmethod
    def _known_provider(cls, v: str) -> str:
        if v not in PROVIDER_CHOICES:
            *first, last = (repr(p) for p in PROVIDER_CHOICES)
            raise ValueError(f"Input should be {', '.join(first)} or {last}")
        return v

    @field_validator("aspect_ratio", mode="before")
    @classmethod
    def _auto_is_adaptive(cls, v):
        if v == "auto":
            raise ValueError("write 'adaptive'; it is sent as 'auto' to the providers that call it so")
        return v

    @field_validator("last_image")
    @classmethod
    def _last_image_is_key_or_url(cls, v: str | None) -> str | None:
        if v is None or v.startswith(("http://", "https://")):
            return v
        problem = key_problem(v)
        if problem:
            raise ValueError(f"must be an http(s) URL or an image key ({problem})")
        return v

    def request_fields(self) -> dict:
        """What shapes the request sent to a provider (everything but the image globs). A deadline left unset is
        left out, so prompts written before it existed keep their data version."""
        unset = {"execution_expires_after"} if self.execution_expires_after is None else set()
        return self.model_dump(exclude={"images", *unset})

    @property
    def data_version(self) -> str:
        doc = json.dumps(self.request_fields(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(doc.encode()).hexdigest()[:20]

    def targets(self, image_key: str) -> bool:
        return _matcher(tuple(self.images))(image_key) is not None


@functools.lru_cache(maxsize=256)
def _matcher(patterns: tuple[str, ...]) -> Callable[[str], re.Match[str] | None]:
    """The image globs as one compiled pattern (``fnmatch.fnmatchcase`` semantics): a catalog asks it per image."""
    return re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in patterns) or "(?!)").match


def parse_prompt(file: str, text: str | bytes) -> PromptSpec:
    """Parse and validate one prompt file; PromptError names the file, field, value and rule."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PromptError(file, "(file)", None, f"not valid YAML: {exc}") from None
    if not isinstance(doc, dict):
        raise PromptError(
            file, "(file)", type(doc).__name__, "must be a mapping of fields (text, images, provider, ...)"
        )
    try:
        return PromptSpec.model_validate(doc)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "(file)"
        rule = (
            "unknown field; allowed: " + ", ".join(PromptSpec.model_fields)
            if err["type"] == "extra_forbidden"
            else err["msg"]
        )
        raise PromptError(file, field, err.get("input"), rule) from None
