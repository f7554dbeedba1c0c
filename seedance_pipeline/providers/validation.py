"""Every documented limit, checked before a request leaves the machine (docs/architecture.md, principle 3).

Each failure is an ``InvalidRequest`` naming the field, the value, the provider and the rule.
"""

from __future__ import annotations

from seedance_pipeline.core import model_spec
from seedance_pipeline.core.errors import InvalidRequest
from seedance_pipeline.core.images import ImageData
from seedance_pipeline.core.request import GenerationRequest
from seedance_pipeline.providers.base import Capabilities

PROMPT_SOFT_LIMIT = 500  # "recommended to keep it under 500 characters" (docs/providers.md §2.6)
MIN_SIDE, MAX_SIDE = 300, 6000
MIN_ASPECT, MAX_ASPECT = 0.4, 2.5
EXPIRES_RANGE = (3600, 259200)


def validate_request(provider: str, caps: Capabilities, req: GenerationRequest) -> list[str]:
    """Check the provider-independent and provider-specific field rules; return warnings."""
    warnings: list[str] = []

    def reject(field: str, value, rule: str):
        raise InvalidRequest(field, value, rule, provider)

    if not req.prompt.strip():
        reject("prompt", req.prompt, "a non-empty prompt is required")
    if len(req.prompt) > PROMPT_SOFT_LIMIT:
        warnings.append(f"prompt is {len(req.prompt)} characters; providers recommend at most {PROMPT_SOFT_LIMIT}")
    if not model_spec.MIN_DURATION_S <= req.duration <= model_spec.MAX_DURATION_S:
        reject(
            "duration",
            req.duration,
            f"an integer number of seconds from {model_spec.MIN_DURATION_S} to {model_spec.MAX_DURATION_S}",
        )
    if req.resolution not in caps.resolutions:
        reject("resolution", req.resolution, f"supported: {', '.join(sorted(caps.resolutions))}")
    if req.aspect_ratio != model_spec.ADAPTIVE and req.aspect_ratio not in caps.ratios:
        reject("aspect_ratio", req.aspect_ratio, f"supported: {', '.join(model_spec.RATIOS)}, adaptive")
    if not -1 <= req.seed <= caps.seed_max:
        reject("seed", req.seed, f"-1 (random) or 0..{caps.seed_max}")
    for extra in ("service_tier", "execution_expires_after", "watermark"):
        if getattr(req, extra) is not None and extra not in caps.extras:
            reject(extra, getattr(req, extra), "this provider has no such option (JieKou and Novita do)")
    if (
        req.execution_expires_after is not None
        and not EXPIRES_RANGE[0] <= req.execution_expires_after <= EXPIRES_RANGE[1]
    ):
        reject(
            "execution_expires_after",
            req.execution_expires_after,
            f"seconds from {EXPIRES_RANGE[0]} to {EXPIRES_RANGE[1]}",
        )
    return warnings


def validate_image(provider: str, caps: Capabilities, field: str, img: ImageData) -> None:
    def reject(rule: str):
        raise InvalidRequest(field, img.ref, rule, provider)

    if img.format not in caps.image_formats:
        reject(f"image format {img.format} is not accepted; accepted: {', '.join(sorted(caps.image_formats))}")
    if img.size > caps.max_image_bytes:
        reject(f"{caps.image_size_rule} (this one is {img.size / 2**20:.1f} MB)")
    # Open ranges (docs/providers.md §2.5): exactly 300 px, 6000 px, 0.4 and 2.5 are refused.
    for side_name, side in (("width", img.width), ("height", img.height)):
        if not MIN_SIDE < side < MAX_SIDE:
            reject(
                f"image {side_name} is {side} px; each side must be more than {MIN_SIDE} and less than {MAX_SIDE} px"
            )
    aspect = img.width / img.height
    if not MIN_ASPECT < aspect < MAX_ASPECT:
        reject(
            f"image aspect (width/height) is {aspect:.3f} ({img.width}x{img.height});"
            f" it must be more than {MIN_ASPECT} and less than {MAX_ASPECT}"
        )


def wire_aspect_ratio(caps: Capabilities, requested: str, first_frame: ImageData) -> str:
    """The ratio in the provider's vocabulary.

    ``adaptive`` goes out as the provider's own word for it (``adaptive`` on JieKou/Novita,
    ``auto`` on VibeDream). Providers without one (RunPod; WaveSpeed, whose table lists none) get the
    explicit ratio nearest the first frame, which is what adaptive means (docs/providers.md §2.3).
    """
    if requested != model_spec.ADAPTIVE:
        return requested
    if caps.adaptive_wire_value:
        return caps.adaptive_wire_value
    return model_spec.nearest_ratio(first_frame.width, first_frame.height)
