"""From clip partitions to requests ready to send: which pairs to make, through which provider, at what cost.

Shared by the ``clips`` asset (to produce), ``forecast`` and ``backfill`` (to price and launch), so a
forecast prices exactly what a run would send. Nothing here talks to a provider.
"""

from __future__ import annotations

import contextlib
import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

import dagster as dg

from seedance_pipeline import pricing
from seedance_pipeline.assets.sources import load_specs
from seedance_pipeline.clip.prepare import PreparedRequest, build_request, prepare
from seedance_pipeline.core import model_spec
from seedance_pipeline.core.errors import InvalidRequest
from seedance_pipeline.core.images import ImageData, inspect_image, is_http_url
from seedance_pipeline.ledger import states
from seedance_pipeline.ledger.records import AttemptRecord
from seedance_pipeline.ledger.store import TaskStore
from seedance_pipeline.lineage import versions
from seedance_pipeline.lineage.names import CLIPS_CODE_VERSION, CLIPS_KEY, IMAGES_KEY, PROMPTS_KEY
from seedance_pipeline.lineage.partitions import clip_key
from seedance_pipeline.prompt_spec import PromptSpec
from seedance_pipeline.providers import ADAPTER_CLASSES, PROVIDERS, get_adapter
from seedance_pipeline.providers.resource import SeedanceProviders
from seedance_pipeline.storage.layout import sidecar_of
from seedance_pipeline.storage.resource import SeedanceStorage

Mode = Literal["all", "missing_or_stale", "missing", "stale"]


@dataclass(frozen=True)
class Candidate:
    prepared: PreparedRequest
    simulated: bool

    @property
    def provider(self) -> str:
        return self.prepared.provider


@dataclass
class Item:
    """One clip partition to produce."""

    image: str
    prompt: str
    spec: PromptSpec | None
    inputs: dict[dg.AssetKey, versions.Version]
    # Cheapest first. One unless the prompt says ``provider: auto``: then every configured provider that
    # accepts the request, and the next is tried only when the previous one never accepted the task.
    candidates: list[Candidate] = field(default_factory=list)
    record: AttemptRecord | None = None  # an attempt a dead run left at the provider, to collect

    @property
    def partition(self) -> dg.MultiPartitionKey:
        return clip_key(self.image, self.prompt)

    @property
    def where(self) -> str:
        return f"{self.image}|{self.prompt}"


@dataclass
class Selection:
    items: list[Item]
    failures: list[str]
    untargeted: int = 0
    left_alone: int = 0  # already made (and, for the stale modes, made from the current inputs)


def select(instance: dg.DagsterInstance, keys: list[tuple[str, str]], mode: Mode) -> Selection:
    """The pairs among ``keys`` that ``mode`` asks to produce, with the input versions they will be made from.

    ``all``: every targeted pair. ``missing``: never made. ``stale``: made, but from other inputs or code
    (an edited prompt, a replaced image). ``missing_or_stale``: both. Pairs a prompt does not target are
    never selected.
    """
    images = {i for i, _ in keys}
    prompt_keys = {p for _, p in keys}
    image_versions = versions.latest_versions(instance, IMAGES_KEY, images)
    prompt_versions = versions.latest_versions(instance, PROMPTS_KEY, prompt_keys)
    specs = load_specs(instance, prompt_keys)
    recorded = {}
    if mode != "all":
        wanted = [str(clip_key(i, p)) for i, p in keys]
        # Past a few thousand keys one unfiltered query beats an IN clause of every key.
        recorded = versions.latest_versions(instance, CLIPS_KEY, wanted if len(wanted) <= 2000 else None)
    selection = Selection(items=[], failures=[])
    for image, prompt in keys:
        spec = specs.get(prompt)
        if spec is None or prompt not in prompt_versions:
            selection.failures.append(
                f"{image}|{prompt}: prompt {prompt!r} has no valid materialization; materialize prompts first"
            )
            continue
        if not spec.targets(image):
            selection.untargeted += 1
            continue
        if image not in image_versions:
            selection.failures.append(
                f"{image}|{prompt}: image {image!r} is not materialized; materialize source_images first"
            )
            continue
        inputs = {IMAGES_KEY: image_versions[image], PROMPTS_KEY: prompt_versions[prompt]}
        previous = recorded.get(str(clip_key(image, prompt)))
        stale = previous is not None and versions.is_stale(previous, inputs, CLIPS_CODE_VERSION)
        wanted = {
            "all": True,
            "missing": previous is None,
            "stale": stale,
            "missing_or_stale": previous is None or stale,
        }
        if not wanted[mode]:
            selection.left_alone += 1
            continue
        selection.items.append(Item(image, prompt, spec, inputs))
    return selection


class ImageLoader:
    """Images from storage by key, each read and inspected once."""

    def __init__(self, storage: SeedanceStorage):
        self.storage = storage
        self._stored = {f.key: f for f in storage.scan_images()[0]}
        self._loaded: dict[str, ImageData] = {}

    def preload(self, keys: set[str]) -> None:
        """Read these images in one batched call (concurrent on object stores: one round trip's wait instead
        of one per image). An image that fails to read is left to ``__call__``, which raises its error."""
        paths = {self._stored[k].path: k for k in keys if k in self._stored and k not in self._loaded}
        if not paths:
            return
        blobs = self.storage.fs.cat(list(paths), on_error="omit")
        for path, key in paths.items():
            if path in blobs:
                with contextlib.suppress(InvalidRequest):  # raised again, naming the field, when the item asks
                    self._loaded[key] = inspect_image(path, blobs[path])

    def __call__(self, key: str, field_name: str = "image") -> ImageData:
        if key not in self._loaded:
            stored = self._stored.get(key)
            if stored is None:
                raise InvalidRequest(field_name, key, "no such image in storage")
            self._loaded[key] = inspect_image(stored.path, self.storage.read_bytes(stored.path))
        return self._loaded[key]


def prepare_items(
    items: list[Item], storage: SeedanceStorage, providers: SeedanceProviders, failures: list[str]
) -> list[Item]:
    """Validate every item before the first request leaves and fill in its candidates; the rest go to ``failures``."""
    image = ImageLoader(storage)
    image.preload({it.image for it in items})
    ready = []
    for it in items:
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
            last_ref = it.spec.last_image
            if last_ref and not is_http_url(last_ref):
                last = image(last_ref, "last_image")
                refs[last.ref] = last
                last_ref = last.ref
            fields = it.spec.request_fields()
            req = build_request(
                prompt=fields["text"],
                image=first.ref,
                last_image=last_ref,
                duration=fields["duration"],
                resolution=fields["resolution"],
                aspect_ratio=fields["aspect_ratio"],
                generate_audio=fields["generate_audio"],
                camera_fixed=fields["camera_fixed"],
                seed=fields["seed"],
                service_tier=fields["service_tier"],
            )
            it.candidates = candidates(it.spec.provider, req, refs, storage, providers)
        except InvalidRequest as exc:
            failures.append(f"{it.where}: {exc}")
            continue
        ready.append(it)
    return ready


def candidates(
    choice: str, req, refs: dict[str, ImageData], storage: SeedanceStorage, providers: SeedanceProviders
) -> list[Candidate]:
    """The named provider, or for ``auto`` every configured provider that accepts the request, cheapest first."""
    names = providers.configured() if choice == "auto" else [choice]
    options, errors = [], []
    for name in names:
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
    return sorted(options, key=lambda c: (c.prepared.estimate.usd, PROVIDERS.index(c.provider)))


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
            or (spec.service_tier is not None and "service_tier" not in caps.extras)
        ):
            continue
        try:
            usd = pricing.estimate(
                name,
                resolution=spec.resolution,
                duration_s=spec.duration,
                width=width,
                height=height,
                generate_audio=spec.generate_audio,
                service_tier=spec.service_tier,
            ).usd
        except pricing.NoPrice:
            continue
        options.append((usd, PROVIDERS.index(name), name))
    return min(options)[2] if options else "auto"


# -- reuse -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reuse:
    candidate: Candidate
    sidecar: dict
    copy_from: str | None  # another stored clip with the same fingerprint (None: the clip's own file)


class StoredClips:
    """What the clip folders of some prompts held when it was made: one recursive listing per prompt (one
    paginated LIST on an object store) instead of 2-3 lookups per clip, each a round trip there. Files written
    after it are not in it; a path outside those folders is not known, so ``may_exist`` says True for it."""

    LIST_FROM = 20  # a prompt's clips in one plan; below it, listing a big folder can cost more than the lookups

    @classmethod
    def for_items(cls, storage: SeedanceStorage, items: list[Item]) -> StoredClips | None:
        """The listing worth making for these items: none on a local folder (a lookup there is a stat)."""
        if storage.is_local:
            return None
        counts = Counter(it.prompt for it in items)
        prompts = {prompt for prompt, n in counts.items() if n >= cls.LIST_FROM}
        return cls(storage, prompts) if prompts else None

    def __init__(self, storage: SeedanceStorage, prompts: set[str]):
        self._folders = tuple(storage.path("clips", p) + "/" for p in sorted(prompts))
        self._files: set[str] = set()
        for folder in self._folders:
            with contextlib.suppress(FileNotFoundError):
                self._files.update(storage.fs.find(folder))

    def may_exist(self, path: str) -> bool:
        return path in self._files or not path.startswith(self._folders)


def checked_sidecar(storage: SeedanceStorage, clip_path: str, stored: StoredClips | None = None) -> dict | None:
    """The sidecar of a stored clip whose file is complete and passed both checks, else None."""
    if stored is not None and not stored.may_exist(sidecar_of(clip_path)):
        return None
    fs = storage.fs
    try:
        sidecar = json.loads(storage.read_bytes(sidecar_of(clip_path)))
        size = fs.size(clip_path)
    except (FileNotFoundError, ValueError):
        return None
    checks = sidecar.get("checks") or {}
    if size != sidecar.get("size_bytes") or not checks or not all(checks.values()):
        return None
    return sidecar


def attempts_by_fingerprint(store: TaskStore, it: Item) -> dict[str, list[AttemptRecord]]:
    """Every recorded attempt of each of the item's candidate requests."""
    return {c.prepared.fingerprint: store.for_fingerprint(c.prepared.fingerprint) for c in it.candidates}


def find_reusable(
    storage: SeedanceStorage, it: Item, attempts: dict[str, list[AttemptRecord]], stored: StoredClips | None = None
) -> Reuse | None:
    """A stored, checked clip made from exactly one of the item's candidate requests (same fingerprint).

    Looked for in the clip's own file, its kept earlier versions, then any other stored clip with that
    fingerprint (a renamed or copied prompt), found through the attempts recorded per fingerprint.
    """
    own = storage.clip_path(it.prompt, it.image)
    for candidate in it.candidates:
        fp = candidate.prepared.fingerprint
        places = [own, storage.version_path(it.prompt, it.image, fp)]
        for rec in reversed(attempts.get(fp, [])):
            if rec.state in states.REUSABLE and rec.output:
                places += [rec.output, storage.version_path(rec.prompt, rec.image, fp)]
        for place in dict.fromkeys(places):
            sidecar = checked_sidecar(storage, place, stored)
            if sidecar is not None and sidecar.get("fingerprint") == fp:
                return Reuse(candidate, sidecar, None if place == own else place)
    return None


def keep_current_version(
    storage: SeedanceStorage, prompt: str, image: str, fingerprint: str, stored: StoredClips | None = None
) -> str | None:
    """Before a different request replaces a pair's clip, keep a copy of the paid-for one; returns where."""
    own = storage.clip_path(prompt, image)
    sidecar = checked_sidecar(storage, own, stored)
    old = (sidecar or {}).get("fingerprint")
    if not old or old == fingerprint:
        return None
    kept = storage.version_path(prompt, image, old)
    if not storage.exists(sidecar_of(kept)):
        storage.copy(own, kept)
        storage.copy(sidecar_of(own), sidecar_of(kept))
    return kept
