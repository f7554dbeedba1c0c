"""``clips``: one MP4 per (image, prompt) the prompt targets, from whichever provider it names.

A run may cover many partitions. Everything that can fail before spending is checked first, for
every partition; then the clips are produced concurrently (each provider's in-flight cap applies)
and each one is recorded the moment it is stored, so a run that fails half-way keeps every clip it
paid for. Per partition, in order: reuse a stored, checked clip made from the same request
fingerprint (no request at all), resume an attempt a previous run left at the provider (poll, never
resubmit), refuse an attempt whose acceptance is unknown, else submit once within the budgets; with
``provider: auto`` fail over to the next cheapest provider only if the previous one never accepted.
"""

import asyncio
import base64
import functools
import json
import logging
import time
from dataclasses import dataclass
from typing import Literal

import dagster as dg

from seedance_pipeline.assets.background import RelayLog, Send, in_background
from seedance_pipeline.clip.checks import Expected, evaluate
from seedance_pipeline.clip.generate import generate_clip
from seedance_pipeline.clip.probe import VideoProbeError, probe_video
from seedance_pipeline.core.errors import OverBudget, ProviderError
from seedance_pipeline.ledger import states
from seedance_pipeline.ledger.budget import SpendGuard, SpendPolicy
from seedance_pipeline.ledger.journal import AttemptJournal
from seedance_pipeline.ledger.liveness import owner_alive
from seedance_pipeline.ledger.records import AttemptRecord
from seedance_pipeline.ledger.store import TaskStore
from seedance_pipeline.lineage import versions
from seedance_pipeline.lineage.names import (
    CLIPS_CODE_VERSION,
    CLIPS_GROUP,
    CLIPS_KEY,
    CLIPS_POOL,
    IMAGES_KEY,
    OUTCOME_TAG,
    OWNERS,
    PROMPTS_KEY,
    PROVIDER_TAG,
)
from seedance_pipeline.lineage.partitions import clip_partitions, split_key
from seedance_pipeline.planning.prepare import prepare_items
from seedance_pipeline.planning.reuse import (
    Reuse,
    StoredClips,
    attempts_by_fingerprint,
    find_reusable,
    keep_current_version,
)
from seedance_pipeline.planning.select import Candidate, Item, select
from seedance_pipeline.production.collect import prepared_from_record
from seedance_pipeline.providers.resource import SeedanceProviders
from seedance_pipeline.providers.states import TaskSnapshot, TaskState
from seedance_pipeline.storage.layout import sidecar_of
from seedance_pipeline.storage.resource import SeedanceStorage

log = logging.getLogger(__name__)

REUSED = states.AttemptState.REUSED.value  # the clip outcome of a reused one (else "generated")


class ClipsConfig(dg.Config):
    """Which targeted partitions of the run to produce, and within what budget.

    ``all``: every one (an explicit materialization or backfill; unchanged requests are reused for free).
    ``missing_or_stale``: those never made, or made from other inputs or code (``seedance-pipeline run``).
    ``missing``: only those never made (the storage sensor: it never regenerates outdated clips by itself).
    ``stale``: only those made from other inputs or code.
    """

    mode: Literal["all", "missing_or_stale", "missing", "stale"] = "all"
    # Attempt ids whose tasks a dead run left at the provider: collect their outputs, never resubmit
    # (the pending-tasks sensor sets this).
    collect: list[str] = []
    # This run's spend limit in USD; None: the configured per-run budget (SEEDANCE_BUDGET_PER_RUN_USD).
    budget_usd: float | None = None


class ItemFailed(Exception):
    pass


@dg.asset(
    partitions_def=clip_partitions,
    output_required=False,
    code_version=CLIPS_CODE_VERSION,
    group_name=CLIPS_GROUP,
    owners=OWNERS,
    kinds={"video", "mp4"},
    deps=[
        dg.AssetDep(IMAGES_KEY, partition_mapping=dg.MultiToSingleDimensionPartitionMapping("image")),
        dg.AssetDep(PROMPTS_KEY, partition_mapping=dg.MultiToSingleDimensionPartitionMapping("prompt")),
    ],
    backfill_policy=dg.BackfillPolicy.single_run(),
    # Per-provider caps are run tags + in-run caps, since a pool is per op, not per provider.
    pool=CLIPS_POOL,
    description="Seedance 1.5 Pro image-to-video clips, one per (image, prompt) the prompt targets, stored at "
    "clips/<prompt>/<image>.mp4 with a JSON sidecar. The request fingerprint (image bytes + request "
    "+ provider + model) is never paid for twice.",
)
def clips(
    context: dg.AssetExecutionContext,
    config: ClipsConfig,
    storage: SeedanceStorage,
    providers: SeedanceProviders,
    spend: SpendPolicy,
):
    started = time.monotonic()
    keys = [split_key(k) for k in context.partition_keys]
    store = TaskStore(storage)
    if config.collect:
        ready, failures = _collect_items(context, config.collect, store, keys), []
    else:
        selection = select(context.instance, keys, config.mode)
        failures = selection.failures
        context.log.info(
            f"{len(keys)} partitions in this run: {len(selection.items)} to produce, "
            f"{selection.untargeted} not targeted by their prompt, {selection.left_alone} left as they "
            f"are (mode {config.mode})"
        )
        ready = prepare_items(selection.items, storage, providers, failures)
        for it in ready:
            for warning in it.candidates[0].prepared.warnings:
                context.log.warning(f"{it.where}: {warning}")
    guard = SpendGuard(
        store,
        per_run_usd=config.budget_usd if config.budget_usd is not None else spend.per_run_usd,
        per_day_usd=spend.per_day_usd,
    )
    production = functools.partial(_produce_all, ready, providers, storage, store, guard, context.run.run_id)
    stored = 0
    # Produced on a thread of its own (see background.py): Dagster writes each event yielded here while
    # the other clips' requests go on.
    with in_background(production, name=f"seedance-clips-{context.run.run_id[:8]}") as received:
        for kind, *payload in received:
            if kind == "log":
                level, text = payload
                getattr(context.log, level)(text)
            elif kind == "item_failed":
                failures.append(payload[0])
                context.log.error(payload[0])
            else:
                stored += 1
                yield from payload[0]
    context.log.info(f"clips run done in {time.monotonic() - started:.1f} s: {stored} stored, {len(failures)} failed")
    if failures:
        raise dg.Failure(
            description=f"{len(failures)} clip(s) failed; every other clip of this run was stored and recorded:\n"
            + "\n".join(f"- {f}" for f in failures),
            allow_retries=False,
        )


@dataclass(frozen=True)
class _Run:
    """What the production needs of the run: its id and a log that reaches the run's event log."""

    run_id: str
    log: RelayLog


async def _produce_all(
    ready: list[Item],
    providers: SeedanceProviders,
    storage: SeedanceStorage,
    store: TaskStore,
    guard: SpendGuard,
    run_id: str,
    send: Send,
) -> None:
    """Every item, concurrently; sends ``("stored", events)`` or ``("item_failed", message)`` per item as it ends."""
    run = _Run(run_id, RelayLog(send))
    used = sorted({c.provider for it in ready for c in it.candidates})
    async with providers.clients(used, logger=run.log) as clients:
        stored = await asyncio.to_thread(StoredClips.for_items, storage, ready)
        plans = await asyncio.gather(
            *(asyncio.to_thread(_plan_production, storage, store, it, run_id, stored) for it in ready)
        )
        plans.sort(key=lambda plan: plan.opened is None)  # tasks already at the provider take the slots first
        tasks = [asyncio.ensure_future(_produce(run, plan, clients, storage, store, guard)) for plan in plans]
        try:
            for next_done in asyncio.as_completed(tasks):
                try:
                    send(("stored", await next_done))
                except ItemFailed as exc:
                    send(("item_failed", str(exc)))
        finally:
            # Leaving early (an error, or the run being stopped): stop waiting, keep every record as it is.
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


def _collect_items(context, attempt_ids: list[str], store: TaskStore, keys) -> list[Item]:
    """Attempts a dead run left at the provider, as items that only poll and download (never submit)."""
    images = {i for i, _ in keys}
    prompts = {p for _, p in keys}
    image_versions = versions.latest_versions(context.instance, IMAGES_KEY, images)
    prompt_versions = versions.latest_versions(context.instance, PROMPTS_KEY, prompts)
    items = []
    for attempt_id in attempt_ids:
        rec = store.load(attempt_id)
        if rec.state not in states.COLLECTABLE or not rec.task_id:
            context.log.info(f"attempt {attempt_id} is {rec.state}: nothing to collect")
            continue
        if (rec.image, rec.prompt) not in keys:
            raise dg.Failure(f"attempt {attempt_id} belongs to {rec.image}|{rec.prompt}, not to this run's partitions")
        inputs = {
            k: v
            for k, v in ((IMAGES_KEY, image_versions.get(rec.image)), (PROMPTS_KEY, prompt_versions.get(rec.prompt)))
            if v
        }
        items.append(
            Item(
                rec.image,
                rec.prompt,
                spec=None,
                inputs=inputs,
                candidates=[Candidate(prepared_from_record(rec), rec.simulated)],
                record=rec,
            )
        )
    return items


@dataclass
class Production:
    """What one item's production starts from, decided before any task is produced."""

    item: Item
    reuse: Reuse | None = None
    opened: tuple[Candidate, AttemptRecord] | None = None  # resume this attempt (poll, never resubmit)
    blocked: str | None = None  # acceptance unknown: a person decides
    kept: str | None = None  # where the clip a changed request replaces was kept


def _plan_production(
    storage: SeedanceStorage, store: TaskStore, it: Item, run_id: str, stored: StoredClips | None
) -> Production:
    attempts = attempts_by_fingerprint(store, it)
    if it.record is None:
        reuse = find_reusable(storage, it, attempts, stored)
        if reuse is not None:
            return Production(it, reuse=reuse)
    try:
        opened = _open_attempt(storage, it, attempts)
    except ItemFailed as exc:
        return Production(it, blocked=str(exc))
    first = opened[0] if opened else it.candidates[0]
    if opened:
        if owner_alive(opened[1].owner) is False:
            storage.remove_partials(storage.clip_path(it.prompt, it.image))  # a download its dead owner left half-done
        try:
            # This process takes the attempt over (owner and run) before any clip starts, so no sensor collects
            # it twice, and its poll need not wait for a write once the slots are handed out.
            opened = (opened[0], store.save(opened[1].model_copy(update={"run_id": run_id})))
        except OSError as exc:
            return Production(it, blocked=_storage_error(it, exc))
    kept = keep_current_version(storage, it.prompt, it.image, first.prepared.fingerprint, stored)
    return Production(it, opened=opened, kept=kept)


def _open_attempt(
    storage: SeedanceStorage, it: Item, attempts: dict[str, list[AttemptRecord]]
) -> tuple[Candidate, AttemptRecord] | None:
    """An earlier attempt of one of the item's requests that the provider has, or may have, taken."""
    if it.record is not None:
        return it.candidates[0], it.record
    for candidate in it.candidates:
        for rec in reversed(attempts[candidate.prepared.fingerprint]):
            if rec.state in states.COLLECTABLE and rec.task_id:
                return candidate, rec
            if (
                rec.state in states.REUSABLE
                and rec.task_id
                and rec.output
                and not storage.exists(sidecar_of(rec.output))
            ):
                # Paid for, but the process died before the clip was stored whole (no sidecar): collect that
                # task's output again rather than paying for the same request twice.
                return candidate, rec
            if rec.state in states.NEEDS_DECISION:
                raise ItemFailed(
                    f"{it.where}: attempt {rec.attempt_id} on {rec.provider} may have been accepted "
                    "(acceptance unknown); it is not resubmitted automatically. Resolve it with "
                    "`seedance-pipeline tasks`."
                )
    return None


async def _produce(
    run: _Run, plan: Production, clients: dict, storage: SeedanceStorage, store: TaskStore, guard: SpendGuard
) -> list:
    """Reuse, resume or submit one item. Runs without awaiting before the provider slot, so slots are taken
    in the order the productions start (tasks already at the provider first). A storage error fails this
    item only (its task record keeps what is known), never the other clips of the run."""
    try:
        return await _produce_one(run, plan, clients, storage, store, guard)
    except OSError as exc:
        raise ItemFailed(_storage_error(plan.item, exc)) from None


def _storage_error(it: Item, exc: OSError) -> str:
    return f"{it.where}: storage error ({type(exc).__name__}: {exc}); its task record keeps what is known; run again"


async def _produce_one(
    run: _Run, plan: Production, clients: dict, storage: SeedanceStorage, store: TaskStore, guard: SpendGuard
) -> list:
    it, opened = plan.item, plan.opened
    if plan.blocked:
        raise ItemFailed(plan.blocked)
    if plan.reuse is not None:
        return await _reuse(run, it, storage, store, plan.reuse)
    clip_path = storage.clip_path(it.prompt, it.image)
    if plan.kept:
        run.log.info(f"{it.where}: the request changed; the earlier clip is kept at {storage.ref(plan.kept)}")
    order = [opened[0]] if opened else it.candidates
    passed_over: list[str] = []
    for n, candidate in enumerate(order):
        prepared, provider = candidate.prepared, candidate.provider
        journal = AttemptJournal(
            store, image=it.image, prompt=it.prompt, run_id=run.run_id, simulated=candidate.simulated, guard=guard
        )
        resume = None
        if opened:  # taken over by this process and run when it was planned
            journal.record = opened[1]
            resume = TaskSnapshot(task_id=opened[1].task_id, state=TaskState.RUNNING, poll_url=opened[1].poll_url)
            run.log.info(
                f"{it.where}: resuming {provider} task {opened[1].task_id} from attempt "
                f"{opened[1].attempt_id} (no new submit)"
            )

        def progress(snap: TaskSnapshot, _provider=provider) -> None:
            # Python's logger, not run.log: every run.log line becomes an event stored in the run's event
            # log (a SQLite write of ~15-50 ms on the event loop), and this fires on most polls.
            pct = f" {snap.progress:.0f}%" if snap.progress is not None else ""
            log.debug("%s: %s task %s %s%s", it.where, _provider, snap.task_id, snap.state.value, pct)

        try:
            result = await generate_clip(
                clients[provider], prepared, storage.fs, clip_path, journal=journal, on_update=progress, resume=resume
            )
        except OverBudget as exc:
            raise ItemFailed(f"{it.where}: {exc}") from None
        except ProviderError as exc:
            never_taken = journal.record is not None and journal.record.state is states.AttemptState.REJECTED
            if never_taken and n + 1 < len(order):
                passed_over.append(f"{provider}: {exc}")
                run.log.warning(
                    f"{it.where}: {provider} did not take the task ({exc}); trying "
                    f"{order[n + 1].provider}, the next cheapest provider that accepts the request"
                )
                continue
            raise ItemFailed(
                f"{it.where}: {exc}" + (f" (after {'; '.join(passed_over)})" if passed_over else "")
            ) from None
        return await _store(it, candidate, storage, result, journal, clients[provider], passed_over)
    raise AssertionError("unreachable")


async def _store(
    it: Item, candidate: Candidate, storage: SeedanceStorage, result, journal, client, passed_over: list[str]
) -> list:
    prepared = candidate.prepared
    clip_path = storage.clip_path(it.prompt, it.image)
    probed, thumb, results = await _probe(storage, clip_path, _expected(prepared))
    sidecar = {
        "image": it.image,
        "prompt": it.prompt,
        "request": prepared.describe(),
        "fingerprint": prepared.fingerprint,
        "provider": result.provider,
        "task_id": result.task_id,
        "seed": result.seed,
        "simulated": candidate.simulated,
        "estimated_cost_usd": result.estimated_cost_usd,
        "estimate_is_assumption": prepared.estimate.assumption,
        "reported_cost_usd": result.reported_cost_usd,
        "source_url_expires_at": _url_expiry(result, client),
        "timings_s": result.timings,
        "size_bytes": result.size_bytes,
        "created_at": time.time(),
        "attempt_id": journal.record.attempt_id if journal.record else None,
        "checks": {name: passed for name, (passed, _) in results.items()},
        "passed_over": passed_over,
    }
    await _write_sidecar(storage, it, sidecar)
    return _events(
        it,
        candidate,
        storage,
        clip_path,
        sidecar,
        probed,
        thumb,
        results,
        outcome="generated",
        source_url=result.source_url,
    )


async def _reuse(run: _Run, it: Item, storage: SeedanceStorage, store: TaskStore, reuse) -> list:
    """A clip made earlier from the same request: no provider request at all (copied if it lives elsewhere)."""
    clip_path = storage.clip_path(it.prompt, it.image)
    sidecar = dict(reuse.sidecar)
    if reuse.copy_from is not None:
        await asyncio.to_thread(
            keep_current_version, storage, it.prompt, it.image, reuse.candidate.prepared.fingerprint
        )
        run.log.info(
            f"{it.where}: same request as the stored {storage.ref(reuse.copy_from)}; copying it (no provider request)"
        )
        await asyncio.to_thread(storage.copy, reuse.copy_from, clip_path)
        sidecar.update(image=it.image, prompt=it.prompt, copied_from=storage.ref(reuse.copy_from))
        await _write_sidecar(storage, it, sidecar)
    prepared = reuse.candidate.prepared
    await asyncio.to_thread(
        functools.partial(
            store.create,
            prepared,
            image=it.image,
            prompt=it.prompt,
            run_id=run.run_id,
            simulated=reuse.candidate.simulated,
            state=states.AttemptState.REUSED,
            output=clip_path,
            task_id=sidecar.get("task_id"),
        )
    )
    probed, thumb, results = await _probe(storage, clip_path, _expected(prepared))
    return _events(it, reuse.candidate, storage, clip_path, sidecar, probed, thumb, results, outcome=REUSED)


async def _write_sidecar(storage: SeedanceStorage, it: Item, sidecar: dict) -> None:
    data = json.dumps(sidecar, indent=1, sort_keys=True).encode()
    await asyncio.to_thread(storage.write_bytes, storage.sidecar_path(it.prompt, it.image), data)


def _expected(prepared) -> Expected:
    return Expected(prepared.width, prepared.height, prepared.request.duration, prepared.request.generate_audio)


def _url_expiry(result, client) -> float | None:
    ttl = result.url_ttl_s if result.url_ttl_s is not None else getattr(client.adapter, "output_url_ttl_s", None)
    return time.time() + ttl if ttl else None


async def _probe(storage: SeedanceStorage, clip_path: str, expected: Expected):
    """Probe the stored MP4 for real (every frame decoded), with a preview of its first frame."""

    def probe():
        with storage.fs.open(clip_path, "rb") as fh:
            return probe_video(fh, preview_width=320)

    try:
        probed = await asyncio.to_thread(probe)
        return probed, probed.preview_jpeg, evaluate(probed, expected)
    except (VideoProbeError, OSError) as exc:
        return None, None, evaluate(None, expected, str(exc))


def _events(
    it: Item,
    candidate: Candidate,
    storage: SeedanceStorage,
    clip_path: str,
    sidecar: dict,
    probed,
    thumb,
    results,
    *,
    outcome: str,
    source_url: str | None = None,
) -> list:
    prepared = candidate.prepared
    reused = outcome == REUSED
    metadata = {
        "outcome": outcome,
        "provider": prepared.provider,
        "simulated": bool(sidecar.get("simulated")),
        "task_id": str(sidecar.get("task_id")),
        "seed": str(sidecar.get("seed")),
        "fingerprint": prepared.fingerprint,
        "estimated_cost_usd": dg.MetadataValue.float(0.0 if reused else float(sidecar["estimated_cost_usd"])),
        "reported_cost_usd": dg.MetadataValue.float(float(sidecar["reported_cost_usd"]))
        if sidecar.get("reported_cost_usd") is not None and not reused
        else dg.MetadataValue.text("not reported"),
        "path": dg.MetadataValue.path(storage.ref(clip_path)),
        "wall_time_s": dg.MetadataValue.float(
            0.0 if reused else float((sidecar.get("timings_s") or {}).get("total_s", 0.0))
        ),
        "aspect_ratio_sent": prepared.aspect_ratio_sent,
    }
    if reused:
        metadata["saved_usd"] = dg.MetadataValue.float(
            float(sidecar.get("reported_cost_usd") or sidecar["estimated_cost_usd"])
        )
    if sidecar.get("passed_over"):
        metadata["passed_over"] = "; ".join(sidecar["passed_over"])
    if source_url:
        metadata["source_url"] = dg.MetadataValue.url(source_url)
    if sidecar.get("source_url_expires_at"):
        metadata["source_url_expires_at"] = dg.MetadataValue.timestamp(float(sidecar["source_url_expires_at"]))
    if probed is not None:
        metadata.update(
            {
                "duration_s": round(probed.duration_s, 3),
                "fps": probed.fps,
                "size": f"{probed.width}x{probed.height}",
                "has_audio": probed.has_audio,
                "size_bytes": probed.size_bytes,
            }
        )
    if thumb:
        metadata["first_frame"] = dg.MetadataValue.md(
            f"![first frame](data:image/jpeg;base64,{base64.b64encode(thumb).decode()})"
        )
    event = versions.materialization(
        CLIPS_KEY,
        it.partition,
        data_version=None,
        code_version=CLIPS_CODE_VERSION,
        inputs=it.inputs,
        metadata=metadata,
        tags={PROVIDER_TAG: prepared.provider, OUTCOME_TAG: outcome},
    )
    return [event, *evaluations(str(it.partition), results)]


def evaluations(partition: str, results: dict[str, tuple[bool, dict]]) -> list[dg.AssetCheckEvaluation]:
    return [
        dg.AssetCheckEvaluation(
            asset_key=CLIPS_KEY,
            check_name=name,
            passed=passed,
            partition=partition,
            metadata=meta,
            severity=dg.AssetCheckSeverity.ERROR,
        )
        for name, (passed, meta) in results.items()
    ]
