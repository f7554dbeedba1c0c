"""Turn a validated request into a task: load the images, size the video, pick the seed.

Provider modules validate their own wire fields first and call ``start_task`` with plain
values; an ``images.ImageProblem`` propagates so each provider answers in its own error shape.
"""

from __future__ import annotations

from dataclasses import dataclass

from seedance_pipeline.simulator import model
from seedance_pipeline.simulator.images import MAX_BYTES, LoadedImage, load_image
from seedance_pipeline.simulator.state import Simulator
from seedance_pipeline.simulator.task import Task

FOLLOW_IMAGE = "adaptive"  # ratio value meaning "follow the first frame" (adaptive / auto / absent)


@dataclass(frozen=True)
class Images:
    image: LoadedImage
    last_image: LoadedImage | None

    def shas(self) -> dict[str, str]:
        out = {"image": self.image.sha256}
        if self.last_image is not None:
            out["last_image"] = self.last_image.sha256
        return out


async def load_images(
    image_ref: object,
    last_image_ref: object | None,
    *,
    allow_data_uri: bool,
    formats: frozenset[str],
    max_bytes: int = MAX_BYTES - 1,
) -> Images:
    image = await load_image(image_ref, "image", allow_data_uri=allow_data_uri, formats=formats, max_bytes=max_bytes)
    last = None
    if last_image_ref is not None:
        last = await load_image(
            last_image_ref, "last_image", allow_data_uri=allow_data_uri, formats=formats, max_bytes=max_bytes
        )
    return Images(image, last)


def start_task(
    sim: Simulator,
    provider: str,
    *,
    prompt: str,
    images: Images,
    ratio: str,
    resolution: str,
    duration_s: int,
    audio: bool,
    seed: int,
    seed_max: int,
    outcome: str | None,
    task_id: str | None = None,
    meta: dict | None = None,
) -> Task:
    """``ratio``: an explicit ratio or FOLLOW_IMAGE; ``seed`` -1 draws one from the seeded RNG."""
    img = images.image
    explicit = model.follow_image(img.width, img.height) if ratio == FOLLOW_IMAGE else ratio
    width, height = model.SIZES[(explicit, resolution)]
    effective_seed = sim.pick_seed(seed_max) if seed == -1 else seed
    return sim.create_task(
        provider,
        prompt=prompt,
        image=img,
        last_image=images.last_image,
        width=width,
        height=height,
        duration_s=duration_s,
        audio=audio,
        seed=effective_seed,
        resolution=resolution,
        ratio=explicit,
        outcome=outcome,
        task_id=task_id,
        meta=meta,
    )
