"""From selected pairs to requests ready to send: validated before the first request leaves, with the
providers that could take each one, cheapest first."""

from __future__ import annotations

from collections.abc import Iterator

from seedance_pipeline.clip.prepare import build_request
from seedance_pipeline.core.errors import InvalidRequest
from seedance_pipeline.core.images import is_http_url
from seedance_pipeline.core.request import GenerationRequest
from seedance_pipeline.lineage.names import IMAGES_KEY
from seedance_pipeline.planning.images import ImageLoader
from seedance_pipeline.planning.prompt_spec import PromptSpec
from seedance_pipeline.planning.provider_choice import candidates
from seedance_pipeline.planning.refusals import Refusals
from seedance_pipeline.planning.retakes import seed_max
from seedance_pipeline.planning.select import Item
from seedance_pipeline.providers.resource import SeedanceProviders
from seedance_pipeline.storage.resource import SeedanceStorage


def prepare_items(
    items: list[Item], storage: SeedanceStorage, providers: SeedanceProviders, failures: list[str]
) -> list[Item]:
    """Validate every item before the first request leaves and fill in its candidates; the rest go to ``failures``."""
    return list(iter_prepared(items, storage, providers, failures))


def iter_prepared(
    items: list[Item],
    storage: SeedanceStorage,
    providers: SeedanceProviders,
    failures: list[str],
) -> Iterator[Item]:
    """``prepare_items`` one item at a time, for a plan that keeps no request once it has priced it. Unchanged
    images are taken from their recorded facts, their bytes read when a request needs them (``planning/images.py``)."""
    image = ImageLoader(storage)
    image.preload({it.image for it in items})
    refusals = Refusals(storage)
    # Per prompt, the request is validated once and copied with each image (only the image reference differs).
    templates: dict[int, GenerationRequest] = {}
    for it in items:
        spec = it.spec
        assert spec is not None, "select() makes every item with its prompt spec"
        try:
            first = image(it.image)
            if first.sha256 != it.inputs[IMAGES_KEY].data_version:
                raise InvalidRequest(
                    "image",
                    it.image,
                    "the file changed since it was materialized; materialize "
                    "source_images again (the storage sensor and `run` do this)",
                )
            refs = {first.ref: first}
            last_ref = spec.last_image
            if last_ref and not is_http_url(last_ref):
                last = image(last_ref, "last_image")
                refs[last.ref] = last
                last_ref = last.ref
            template = templates.get(id(spec))
            if template is None or template.last_image != last_ref:
                template = templates[id(spec)] = _request(spec, first.ref, last_ref)
            req = template if template.image == first.ref else template.model_copy(update={"image": first.ref})
            if it.retake is not None:
                req = req.model_copy(update={"seed": it.retake.seed(seed_max(spec.provider))})
            it.candidates = candidates(spec.provider, req, refs, storage, providers, refusals)
        except InvalidRequest as exc:
            failures.append(f"{it.where}: {exc}")
            continue
        yield it


def _request(spec: PromptSpec, image: str, last_image: str | None) -> GenerationRequest:
    fields = spec.request_fields()
    return build_request(
        prompt=fields["text"],
        image=image,
        last_image=last_image,
        duration=fields["duration"],
        resolution=fields["resolution"],
        aspect_ratio=fields["aspect_ratio"],
        generate_audio=fields["generate_audio"],
        camera_fixed=fields["camera_fixed"],
        seed=fields["seed"],
        service_tier=fields["service_tier"],
        execution_expires_after=fields.get("execution_expires_after"),
    )
