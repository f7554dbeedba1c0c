"""``clips``: one MP4 per (image, prompt) the prompt targets, from whichever provider it names.

A run may cover many partitions. Everything that can fail before spending is checked first, for
every partition; then the clips are produced concurrently (each provider's in-flight cap applies)
and each one is recorded the moment it is stored, so a run that fails half-way keeps every clip it
paid for. Per partition, in order: reuse a stored clip with the same request fingerprint (no request
at all), resume an attempt a previous run left at the provider (poll, never resubmit), refuse an
attempt whose acceptance is unknown, else submit once.
"""


import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Literal

import dagster as dg

from .. import lineage
from ..checks import Expected, evaluate, evaluations
from ..errors import InvalidRequest, ProviderError
from ..generation import PreparedRequest, build_request, generate_clip, prepare
from ..partitions import clip_key, clip_partitions
from ..prompt_spec import PromptSpec
from ..provider_resource import SeedanceProviders
from ..providers import get_adapter
from ..providers.images import ImageData, inspect_image, is_http_url
from ..providers.states import TaskSnapshot, TaskState
from ..storage import SeedanceStorage
from ..tasks import AttemptJournal, AttemptRecord, TaskStore, prepared_from_record
from ..video import VideoProbeError, first_frame_png, probe_video
from .sources import IMAGES_KEY, PROMPTS_KEY

CLIPS_KEY = dg.AssetKey("clips")
CLIPS_CODE_VERSION = "1"  # bump when the request mapping or the model changes
PROVIDER_TAG = "seedance/provider"
OUTCOME_TAG = "seedance/outcome"


class ClipsConfig(dg.Config):
    """Which targeted partitions of the run to produce.

    ``all``: every one (an explicit materialization or backfill; unchanged requests are reused for free).
    ``missing_or_stale``: those never made, or made from other inputs or code (``seedance-pipeline run``).
    ``missing``: only those never made (the storage sensor: it never regenerates outdated clips by itself).
    """

    mode: Literal["all", "missing_or_stale", "missing"] = "all"
    # Attempt ids whose tasks a dead run left at the provider: collect their outputs, never resubmit
    # (the pending-tasks sensor sets this).
    collect: list[str] = []


@dataclass
class Item:
    image: str
    prompt: str
    spec: PromptSpec | None
    inputs: dict[dg.AssetKey, lineage.Version]
    prepared: PreparedRequest | None = None
    simulated: bool = False
    record: AttemptRecord | None = None  # an open attempt to resume
    notes: list[str] = field(default_factory=list)

    @property
    def partition(self) -> dg.MultiPartitionKey:
        return clip_key(self.image, self.prompt)


class ItemFailed(Exception):
    pass


def load_specs(instance: dg.DagsterInstance, prompt_keys: set[str]) -> dict[str, PromptSpec]:
    """The prompt specs exactly as the prompts asset recorded them (what lineage says we used)."""
    specs = {}
    for key in sorted(prompt_keys):
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=PROMPTS_KEY, asset_partitions=[key]), limit=1).records
        if records:
            spec_meta = records[0].asset_materialization.metadata.get("spec")
            if spec_meta is not None:
                specs[key] = PromptSpec.model_validate(spec_meta.value)
    return specs


def split_key(key: str | dg.MultiPartitionKey) -> tuple[str, str]:
    if isinstance(key, dg.MultiPartitionKey):
        dims = key.keys_by_dimension
        return dims["image"], dims["prompt"]
    image, prompt = key.split("|")
    return image, prompt


@dg.asset(
    partitions_def=clip_partitions,
    output_required=False,
    code_version=CLIPS_CODE_VERSION,
    group_name="clips",
    owners=["team:creative-ops"],
    kinds={"video", "mp4"},
    deps=[
        dg.AssetDep(IMAGES_KEY, partition_mapping=dg.MultiToSingleDimensionPartitionMapping("image")),
        dg.AssetDep(PROMPTS_KEY, partition_mapping=dg.MultiToSingleDimensionPartitionMapping("prompt")),
    ],
    backfill_policy=dg.BackfillPolicy.single_run(),
    description="Seedance 1.5 Pro image-to-video clips, one per (image, prompt) the prompt targets, stored at "
                "clips/<prompt>/<image>.mp4 with a JSON sidecar. The request fingerprint (image bytes + request "
                "+ provider + model) is never paid for twice.",
)
async def clips(context: dg.AssetExecutionContext, config: ClipsConfig, storage: SeedanceStorage,
                providers: SeedanceProviders):
    started = time.monotonic()
    keys = [split_key(k) for k in context.partition_keys]
    instance = context.instance
    images = {i for i, _ in keys}
    prompt_keys = {p for _, p in keys}
    image_versions = lineage.latest_versions(instance, IMAGES_KEY, images)
    prompt_versions = lineage.latest_versions(instance, PROMPTS_KEY, prompt_keys)
    specs = load_specs(instance, prompt_keys)
    recorded = {}
    if config.mode != "all":
        wanted = [str(clip_key(i, p)) for i, p in keys]
        # Past a few thousand keys one unfiltered query beats an IN clause of every key.
        recorded = lineage.latest_versions(instance, CLIPS_KEY, wanted if len(wanted) <= 2000 else None)

    failures: list[str] = []
    items: list[Item] = []
    untargeted = fresh = 0
    store = TaskStore(storage)
    collected = _collect_items(context, config.collect, store, keys, image_versions, prompt_versions)
    for image, prompt in ([] if config.collect else keys):
        spec = specs.get(prompt)
        if spec is None or prompt not in prompt_versions:
            failures.append(f"{image}|{prompt}: prompt {prompt!r} has no valid materialization; materialize prompts first")
            continue
        if not spec.targets(image):
            untargeted += 1
            continue
        if image not in image_versions:
            failures.append(f"{image}|{prompt}: image {image!r} is not materialized; materialize source_images first")
            continue
        inputs = {IMAGES_KEY: image_versions[image], PROMPTS_KEY: prompt_versions[prompt]}
        previous = recorded.get(str(clip_key(image, prompt)))
        if (config.mode == "missing" and previous) or (
                config.mode == "missing_or_stale" and not lineage.is_stale(previous, inputs, CLIPS_CODE_VERSION)):
            fresh += 1
            continue
        items.append(Item(image, prompt, spec, inputs))
    context.log.info(f"{len(keys)} partitions in this run: {len(items)} to produce, {untargeted} not targeted "
                     f"by their prompt, {fresh} left as they are (mode {config.mode})")

    ready = _prepare_all(context, items, storage, providers, failures) + collected
    used = sorted({it.prepared.provider for it in ready})
    async with providers.clients(used, logger=context.log) as clients:
        stored = 0
        tasks = [asyncio.ensure_future(_produce(context, it, clients[it.prepared.provider], storage, store)) for it in ready]
        try:
            for next_done in asyncio.as_completed(tasks):
                try:
                    events = await next_done
                except ItemFailed as exc:
                    failures.append(str(exc))
                    context.log.error(str(exc))
                    continue
                stored += 1
                for event in events:
                    yield event
        finally:
            # Leaving early (an error, or the run being stopped): stop waiting, keep every record as it is.
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    context.log.info(f"clips run done in {time.monotonic() - started:.1f} s: {stored} stored, {len(failures)} failed")
    if failures:
        raise dg.Failure(
            description=f"{len(failures)} clip(s) failed; every other clip of this run was stored and recorded:\n"
                        + "\n".join(f"- {f}" for f in failures),
            allow_retries=False,
        )


def _collect_items(context, attempt_ids: list[str], store: TaskStore, keys, image_versions, prompt_versions) -> list[Item]:
    items = []
    for attempt_id in attempt_ids:
        rec = store.load(attempt_id)
        if rec.state not in ("accepted", "download_failed") or not rec.task_id:
            context.log.info(f"attempt {attempt_id} is {rec.state}: nothing to collect")
            continue
        if (rec.image, rec.prompt) not in keys:
            raise dg.Failure(f"attempt {attempt_id} belongs to {rec.image}|{rec.prompt}, not to this run's partitions")
        inputs = {k: v for k, v in ((IMAGES_KEY, image_versions.get(rec.image)), (PROMPTS_KEY, prompt_versions.get(rec.prompt))) if v}
        items.append(Item(rec.image, rec.prompt, spec=None, inputs=inputs, prepared=prepared_from_record(rec),
                          simulated=rec.simulated, record=rec))
    return items


def _prepare_all(context, items: list[Item], storage: SeedanceStorage, providers: SeedanceProviders,
                 failures: list[str]) -> list[Item]:
    """Validate every partition before the first request leaves; read each image once."""
    stored = {f.key: f for f in storage.scan_images()[0]}
    loaded: dict[str, ImageData] = {}

    def image(key: str, field_name: str = "image") -> ImageData:
        if key not in loaded:
            if key not in stored:
                raise InvalidRequest(field_name, key, "no such image in storage")
            loaded[key] = inspect_image(stored[key].path, storage.read_bytes(stored[key].path))
        return loaded[key]

    ready = []
    for it in items:
        where = f"{it.image}|{it.prompt}"
        try:
            first = image(it.image)
            if first.sha256 != it.inputs[IMAGES_KEY].data_version:
                raise ItemFailed(f"{where}: images/{it.image} changed since it was materialized; "
                                 "materialize source_images again (the storage sensor and `run` do this)")
            refs = {first.ref: first}
            last_ref = it.spec.last_image
            if last_ref and not is_http_url(last_ref):
                last = image(last_ref, "last_image")
                refs[last.ref] = last
                last_ref = last.ref
            fields = it.spec.request_fields()
            req = build_request(prompt=fields["text"], image=first.ref, last_image=last_ref,
                                duration=fields["duration"], resolution=fields["resolution"],
                                aspect_ratio=fields["aspect_ratio"], generate_audio=fields["generate_audio"],
                                camera_fixed=fields["camera_fixed"], seed=fields["seed"],
                                service_tier=fields["service_tier"])
            it.prepared, it.simulated = _choose_provider(it.spec.provider, req, refs, storage, providers)
        except (InvalidRequest, ItemFailed) as exc:
            failures.append(f"{where}: {exc}" if isinstance(exc, InvalidRequest) else str(exc))
            continue
        for warning in it.prepared.warnings:
            context.log.warning(f"{where}: {warning}")
        ready.append(it)
    return ready


def _choose_provider(choice: str, req, refs: dict[str, ImageData], storage: SeedanceStorage,
                     providers: SeedanceProviders) -> tuple[PreparedRequest, bool]:
    """The named provider, or for ``auto`` the cheapest configured one that accepts the request."""
    candidates = providers.configured() if choice == "auto" else [choice]
    options, errors = [], []
    for name in candidates:
        route = providers.route(name)

        def presign(ref: str, _route=route) -> str | None:
            url = storage.presign(ref)
            if url is None and _route.simulated and ref in refs:
                url = providers.host_image(ref.rsplit("/", 1)[-1], refs[ref].data)
            return url

        try:
            options.append((prepare(get_adapter(name), req, presign=presign, images=refs), route.simulated))
        except InvalidRequest as exc:
            errors.append(exc)
    if not options:
        if len(errors) == 1:
            raise errors[0]
        raise InvalidRequest("provider", choice, "no configured provider accepts this request: "
                             + "; ".join(str(e) for e in errors))
    return min(options, key=lambda o: o[0].estimate.usd)


async def _produce(context, it: Item, client, storage: SeedanceStorage, store: TaskStore) -> list:
    """One clip; a storage error fails this clip only (its task record keeps what is known), not the run."""
    try:
        return await _produce_one(context, it, client, storage, store)
    except OSError as exc:
        raise ItemFailed(f"{it.image}|{it.prompt}: storage error ({type(exc).__name__}: {exc}); "
                         "its task record keeps what is known; run again") from None


async def _produce_one(context, it: Item, client, storage: SeedanceStorage, store: TaskStore) -> list:
    prepared, where = it.prepared, f"{it.image}|{it.prompt}"
    assert prepared is not None
    clip_path, sidecar_path = storage.clip_path(it.prompt, it.image), storage.sidecar_path(it.prompt, it.image)
    run_id = context.run.run_id
    reused = None if it.record else await asyncio.to_thread(_reusable, storage, clip_path, sidecar_path, prepared.fingerprint)
    if reused is not None:
        store.create(prepared, image=it.image, prompt=it.prompt, run_id=run_id, simulated=it.simulated,
                     state="reused", output=clip_path, task_id=reused.get("task_id"))
        return await _record(context, it, storage, clip_path, reused, outcome="reused")

    resume = None
    journal = AttemptJournal(store, image=it.image, prompt=it.prompt, run_id=run_id, simulated=it.simulated)
    candidates = [it.record] if it.record else list(reversed(store.for_fingerprint(prepared.fingerprint)))
    for rec in candidates:
        # "succeeded" here means the clip was paid for but is not stored whole (e.g. the sidecar write
        # failed): collect that task's output again rather than paying for the same request twice.
        if rec.state in ("accepted", "download_failed", "succeeded") and rec.task_id:
            resume, journal.record = TaskSnapshot(task_id=rec.task_id, state=TaskState.RUNNING, poll_url=rec.poll_url), rec
            context.log.info(f"{where}: resuming {rec.provider} task {rec.task_id} from attempt {rec.attempt_id} (no new submit)")
            break
        if rec.state in ("intent", "unknown"):
            raise ItemFailed(f"{where}: attempt {rec.attempt_id} on {rec.provider} may have been accepted "
                             "(acceptance unknown); it is not resubmitted automatically. Resolve it with "
                             "`seedance-pipeline tasks`.")

    def progress(snap: TaskSnapshot) -> None:
        pct = f" {snap.progress:.0f}%" if snap.progress is not None else ""
        context.log.debug(f"{where}: {prepared.provider} task {snap.task_id} {snap.state.value}{pct}")

    try:
        result = await generate_clip(client, prepared, storage.fs, clip_path, journal=journal, on_update=progress,
                                     resume=resume)
    except ProviderError as exc:
        raise ItemFailed(f"{where}: {exc}") from None
    sidecar = {
        "image": it.image, "prompt": it.prompt, "request": prepared.describe(), "fingerprint": prepared.fingerprint,
        "provider": result.provider, "task_id": result.task_id, "seed": result.seed, "simulated": it.simulated,
        "estimated_cost_usd": result.estimated_cost_usd, "estimate_is_assumption": prepared.estimate.assumption,
        "reported_cost_usd": result.reported_cost_usd, "source_url_expires_at": _url_expiry(result, client),
        "timings_s": result.timings, "size_bytes": result.size_bytes, "created_at": time.time(),
        "attempt_id": journal.record.attempt_id if journal.record else None,
    }
    storage.write_bytes(sidecar_path, json.dumps(sidecar, indent=1, sort_keys=True).encode())
    return await _record(context, it, storage, clip_path, sidecar, outcome="generated", source_url=result.source_url)


def _url_expiry(result, client) -> float | None:
    ttl = result.url_ttl_s if result.url_ttl_s is not None else getattr(client.adapter, "output_url_ttl_s", None)
    return time.time() + ttl if ttl else None


def _reusable(storage: SeedanceStorage, clip_path: str, sidecar_path: str, fingerprint: str) -> dict | None:
    """The stored sidecar when the stored clip was made from exactly this request, else None."""
    fs = storage.fs
    if not (fs.exists(sidecar_path) and fs.exists(clip_path)):
        return None
    try:
        sidecar = json.loads(storage.read_bytes(sidecar_path))
    except ValueError:
        return None
    if sidecar.get("fingerprint") != fingerprint or fs.size(clip_path) != sidecar.get("size_bytes"):
        return None
    return sidecar


async def _record(context, it: Item, storage: SeedanceStorage, clip_path: str, sidecar: dict, *, outcome: str,
                  source_url: str | None = None) -> list:
    prepared = it.prepared
    expected = Expected(prepared.width, prepared.height, prepared.request.duration, prepared.request.generate_audio)

    def probe():
        with storage.fs.open(clip_path, "rb") as fh:
            return probe_video(fh), first_frame_png(storage.fs.open(clip_path, "rb"), max_width=320)

    try:
        probed, thumb = await asyncio.to_thread(probe)
        results = evaluate(probed, expected)
    except (VideoProbeError, OSError) as exc:
        probed, thumb, results = None, None, evaluate(None, expected, str(exc))
    partition = str(it.partition)
    metadata = {
        "outcome": outcome, "provider": prepared.provider,
        "simulated": bool(sidecar.get("simulated")), "task_id": str(sidecar.get("task_id")),
        "seed": str(sidecar.get("seed")), "fingerprint": prepared.fingerprint,
        "estimated_cost_usd": dg.MetadataValue.float(0.0 if outcome == "reused" else float(sidecar["estimated_cost_usd"])),
        "reported_cost_usd": dg.MetadataValue.float(float(sidecar["reported_cost_usd"]))
        if sidecar.get("reported_cost_usd") is not None and outcome != "reused" else dg.MetadataValue.text("not reported"),
        "path": dg.MetadataValue.path(storage.ref(clip_path)),
        "wall_time_s": dg.MetadataValue.float(float((sidecar.get("timings_s") or {}).get("total_s", 0.0))),
        "aspect_ratio_sent": prepared.aspect_ratio_sent,
    }
    if source_url:
        metadata["source_url"] = dg.MetadataValue.url(source_url)
    if sidecar.get("source_url_expires_at"):
        metadata["source_url_expires_at"] = dg.MetadataValue.timestamp(float(sidecar["source_url_expires_at"]))
    if probed is not None:
        metadata.update({"duration_s": round(probed.duration_s, 3), "fps": probed.fps,
                         "size": f"{probed.width}x{probed.height}", "has_audio": probed.has_audio,
                         "size_bytes": probed.size_bytes})
    if thumb:
        import base64

        metadata["first_frame"] = dg.MetadataValue.md(f"![first frame](data:image/png;base64,{base64.b64encode(thumb).decode()})")
    event = lineage.materialization(
        CLIPS_KEY, it.partition, data_version=None, code_version=CLIPS_CODE_VERSION,
        inputs=it.inputs, metadata=metadata,
        tags={PROVIDER_TAG: prepared.provider, OUTCOME_TAG: outcome},
    )
    return [event, *evaluations(partition, results)]
