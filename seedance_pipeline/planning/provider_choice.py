"""Through which provider: the one a prompt names, or for ``provider: auto`` every configured provider that
accepts the request, cheapest first (the next is tried only if the previous one never accepted the task); at one
price, a published price before an assumed one (prices.yaml ``assumption``), then the registry's order."""

from __future__ import annotations

from seedance_pipeline import pricing
from seedance_pipeline.clip.prepare import prepare
from seedance_pipeline.core import model_spec
from seedance_pipeline.core.errors import InvalidRequest
from seedance_pipeline.core.images import ImageData
from seedance_pipeline.core.request import GenerationRequest
from seedance_pipeline.planning.prompt_spec import PromptSpec
from seedance_pipeline.planning.refusals import Refusals
from seedance_pipeline.planning.select import Candidate
from seedance_pipeline.providers import ADAPTER_CLASSES, PROVIDERS, get_adapter
from seedance_pipeline.providers.resource import SeedanceProviders
from seedance_pipeline.storage.resource import SeedanceStorage


def candidates(
    choice: str,
    req: GenerationRequest,
    refs: dict[str, ImageData],
    storage: SeedanceStorage,
    providers: SeedanceProviders,
    refusals: Refusals | None = None,
) -> list[Candidate]:
    """The named provider, or for ``auto`` every configured provider that accepts the request, cheapest first.
    A provider known to refuse the request's resolution (``refusals.py``) is not a candidate."""
    names = providers.configured() if choice == "auto" else [choice]
    options, errors = [], []
    for name in names:
        refused = refusals.reason(name, req.resolution) if refusals is not None else None
        if refusals is not None and refused:
            rule = f"{refused}; delete {refusals.path} to try again"
            errors.append(InvalidRequest("resolution", req.resolution, rule, name))
            continue
        route = providers.route(name)

        def presign(ref: str, _route=route) -> str | None:
            url = storage.presign(ref)
            if url is None and _route.simulated and ref in refs:
                url = providers.host_image(ref.rsplit("/", 1)[-1], refs[ref].data)
            return url

        try:
            options.append(Candidate(prepare(get_adapter(name), req, presign=presign, images=refs), route.simulated))
        except InvalidRequest as exc:
            errors.append(exc)
    if not options:
        if len(errors) == 1:
            raise errors[0]
        raise InvalidRequest(
            "provider", choice, "no configured provider accepts this request: " + "; ".join(str(e) for e in errors)
        )
    return sorted(
        options,
        key=lambda c: (c.prepared.estimate.usd, c.prepared.estimate.assumption, PROVIDERS.index(c.provider)),
    )


def planned_provider(spec: PromptSpec, providers: SeedanceProviders) -> str:
    """The provider a prompt's runs are tagged with, decided without reading images: its own, or for ``auto``
    the cheapest configured provider whose documented capabilities fit the request's fields. (Images can
    still rule a provider out at run time; the run then fails over as usual.)"""
    if spec.provider != "auto":
        return spec.provider
    # Adaptive is priced at 16:9: every provider's price scales alike with the ratio, so the order holds.
    ratio = "16:9" if spec.aspect_ratio == model_spec.ADAPTIVE else spec.aspect_ratio
    width, height = model_spec.pixel_size(ratio, spec.resolution)
    options = []
    for name in providers.configured():
        caps = ADAPTER_CLASSES[name].capabilities
        if (
            spec.resolution not in caps.resolutions
            or spec.seed > caps.seed_max
            or any(getattr(spec, extra) is not None and extra not in caps.extras for extra in _EXTRAS)
        ):
            continue
        try:
            cost = pricing.estimate(
                name,
                resolution=spec.resolution,
                duration_s=spec.duration,
                width=width,
                height=height,
                generate_audio=spec.generate_audio,
                service_tier=spec.service_tier,
            )
        except pricing.NoPrice:
            continue
        options.append((cost.usd, cost.assumption, PROVIDERS.index(name), name))
    return min(options)[3] if options else "auto"


_EXTRAS = ("service_tier", "execution_expires_after")  # prompt fields only some providers take
