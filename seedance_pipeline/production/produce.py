"""The production of a run's clips, concurrently on the production thread's event loop: each provider's
in-flight cap applies, tasks already at a provider take the slots first, and with ``provider: auto`` a clip
fails over to the next cheapest provider only if the previous one never accepted the task."""

from __future__ import annotations

import asyncio
import functools
import io
import logging
from dataclasses import dataclass

from seedance_pipeline.clip.generate import generate_clip
from seedance_pipeline.core.errors import InvalidRequest, OverBudget, ProviderError, SubmitRejected
from seedance_pipeline.ledger import states
from seedance_pipeline.ledger.budget import SpendGuard
from seedance_pipeline.ledger.day_spend import committed_usd
from seedance_pipeline.ledger.journal import AttemptJournal
from seedance_pipeline.ledger.store import TaskStore
from seedance_pipeline.planning.refusals import Refusals
from seedance_pipeline.planning.reuse import StoredClips
from seedance_pipeline.planning.select import Item
from seedance_pipeline.production.bridge import RelayLog, Send
from seedance_pipeline.production.latency import LatencyMemory, route_key
from seedance_pipeline.production.messages import Failed, Stored
from seedance_pipeline.production.metadata import lost_observation
from seedance_pipeline.production.plan import (
    PLANNING,
    ItemFailed,
    Production,
    plan_production,
    resumed_first,
    storage_error,
)
from seedance_pipeline.production.store import Events, reuse_stored, sources, store_generated
from seedance_pipeline.providers.engine import ProviderClient
from seedance_pipeline.providers.resource import SeedanceProviders
from seedance_pipeline.providers.states import TaskSnapshot, TaskState
from seedance_pipeline.storage import layout
from seedance_pipeline.storage.resource import SeedanceStorage

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Run:
    """What every clip's production shares: the run's id, a log that reaches its event log, one engine client
    per provider, storage, the task records and the run's budget guard."""

    run_id: str
    log: RelayLog
    clients: dict[str, ProviderClient]
    storage: SeedanceStorage
    store: TaskStore
    guard: SpendGuard
    refusals: Refusals


async def produce_all(
    ready: list[Item],
    providers: SeedanceProviders,
    storage: SeedanceStorage,
    store: TaskStore,
    guard: SpendGuard,
    run_id: str,
    send: Send,
) -> None:
    """Every item, concurrently; sends ``Stored`` or ``Failed`` for each item as it ends. The poll schedules
    start from what earlier runs learned (production/latency.py) and what this run learns is kept."""
    log = RelayLog(send)
    used = sorted({c.provider for it in ready for c in it.candidates})
    async with providers.clients(used, logger=log) as clients:
        # Four reads that need nothing of each other, at once: on an object store one round trip's wait, not four.
        memory, refusals, stored, first = await asyncio.gather(
            asyncio.to_thread(LatencyMemory, storage),
            asyncio.to_thread(Refusals, storage),
            asyncio.to_thread(StoredClips.for_items, storage, ready),
            asyncio.to_thread(resumed_first, store, ready),
        )
        keyed = {p: (c, route_key(p, providers.route(p).simulated)) for p, c in clients.items()}
        memory.seed(keyed)
        run = Run(run_id, log, clients, storage, store, guard, refusals)
        try:
            await _produce_every(run, ready, send, stored, first)
        finally:
            await asyncio.to_thread(memory.save, keyed)


async def _produce_every(
    run: Run, ready: list[Item], send: Send, stored: StoredClips | None, first: list[Item]
) -> None:
    """Plan each item (its task records looked up: a round trip or two each on an object store) and start its
    production as soon as its plan is made, in order, PLANNING at a time, so the first submits do not wait for the
    last item's lookups and the storage threads stay free for the intents. Items with a task already at a provider
    (``first``: from tasks/open/, one listing) are planned and started first: they take the slots first."""
    lookups = asyncio.Semaphore(PLANNING)

    async def planned(it: Item) -> Production:
        async with lookups:
            try:
                return await asyncio.to_thread(plan_production, run.storage, run.store, it, run.run_id, stored)
            except OSError as exc:  # this item's lookups failed: it fails, the clips already under way go on
                return Production(it, blocked=storage_error(it, exc))

    async def produce_and_send(plan: Production) -> None:
        try:
            send(Stored(await _produce(run, plan)))
        except ItemFailed as exc:
            send(Failed(str(exc), exc.events))

    tasks: list[asyncio.Future] = []
    chosen = {id(it) for it in first}
    plans = [asyncio.ensure_future(planned(it)) for it in first]
    plans += [asyncio.ensure_future(planned(it)) for it in ready if id(it) not in chosen]
    try:
        for resumed in await asyncio.gather(*plans[: len(first)]):
            tasks.append(asyncio.ensure_future(produce_and_send(resumed)))
        for plan in plans[len(first) :]:
            tasks.append(asyncio.ensure_future(produce_and_send(await plan)))
        await asyncio.gather(*tasks)
    finally:
        # Leaving early (an error, or the run being stopped): stop waiting, keep every record as it is.
        for task in [*plans, *tasks]:
            task.cancel()
        await asyncio.gather(*plans, *tasks, return_exceptions=True)


async def _produce(run: Run, plan: Production) -> Events:
    """Reuse, resume or submit one item. Runs without awaiting before the provider slot, so slots are taken
    in the order the productions start (tasks already at the provider first). A storage error fails this
    item only (its task record keeps what is known), never the other clips of the run."""
    try:
        return await _produce_one(run, plan)
    except OSError as exc:
        raise ItemFailed(storage_error(plan.item, exc)) from None


async def _produce_one(run: Run, plan: Production) -> Events:
    it, opened, storage = plan.item, plan.opened, run.storage
    if plan.blocked:
        raise ItemFailed(plan.blocked)
    if plan.reuse is not None:
        return await reuse_stored(run.run_id, run.log, it, storage, run.store, plan.reuse)
    clip_path = storage.clip_path(it.prompt, it.image)
    if plan.kept:
        run.log.info(f"{it.where}: the request changed; the earlier clip is kept at {storage.ref(plan.kept)}")
    if plan.after_lost:
        run.log.warning(
            f"{it.where}: the provider forgot attempt {plan.after_lost} of this request (counted as charged); "
            "making the clip again as a new, budget-checked attempt"
        )
    order = [opened[0]] if opened else it.candidates
    # On an object store the clip is checked from the bytes it was uploaded from: reading it back would
    # cost a HEAD and a GET per clip (benchmark 1). A local file is read back (from the page cache).
    kept = None if storage.is_local else io.BytesIO()
    passed_over: list[str] = []
    for n, candidate in enumerate(order):
        prepared, provider = candidate.prepared, candidate.provider
        refused = None if opened else run.refusals.reason(provider, prepared.request.resolution)
        if refused:  # learned earlier in this run: nothing is sent that is known to be refused
            passed_over.append(refused)
            if n + 1 < len(order):
                continue
            raise ItemFailed(f"{it.where}: {'; '.join(passed_over)}")
        journal = AttemptJournal(
            run.store,
            image=it.image,
            prompt=it.prompt,
            run_id=run.run_id,
            simulated=candidate.simulated,
            guard=run.guard,
        )
        resume = None
        if opened:  # taken over by this process and run when it was planned
            journal.record = opened[1]
            assert opened[1].task_id, "plan_production opens only attempts with a task id"
            resume = TaskSnapshot(task_id=opened[1].task_id, state=TaskState.RUNNING, poll_url=opened[1].poll_url)
            run.log.info(
                f"{it.where}: resuming {provider} task {opened[1].task_id} from attempt "
                f"{opened[1].attempt_id} (no new submit)"
            )

        def progress(snap: TaskSnapshot, _provider=provider) -> None:
            # Python's logger, not run.log: every run.log line becomes an event stored in the run's event
            # log (a database write on the event loop, benchmarks/README.md M3), and this fires on most polls.
            pct = f" {snap.progress:.0f}%" if snap.progress is not None else ""
            log.debug("%s: %s task %s %s%s", it.where, _provider, snap.task_id, snap.state.value, pct)

        try:
            result = await generate_clip(
                run.clients[provider],
                prepared,
                storage.fs,
                clip_path,
                journal=journal,
                on_update=progress,
                resume=resume,
                patient=n + 1 == len(order),
                keep=kept,
                last_frame_path=layout.last_frame_of(clip_path),
                while_held=functools.partial(sources, prepared),  # the thumbnails from the bytes just sent
            )
        except (OverBudget, InvalidRequest) as exc:  # an image that changed since the plan: nothing was sent
            raise ItemFailed(f"{it.where}: {exc}") from None
        except ProviderError as exc:
            never_taken = journal.record is not None and journal.record.state is states.AttemptState.REJECTED
            if never_taken and isinstance(exc, SubmitRejected):
                resolution = prepared.request.resolution
                if await asyncio.to_thread(run.refusals.learn, provider, resolution, exc):
                    run.log.warning(f"{provider} refused {resolution} at submit: remembered ({run.refusals.path})")
            if never_taken and n + 1 < len(order):
                passed_over.append(f"{provider}: {exc}")
                run.log.warning(
                    f"{it.where}: {provider} did not take the task ({exc}); trying "
                    f"{order[n + 1].provider}, the next cheapest provider that accepts the request"
                )
                continue
            record = journal.record
            if record is not None and record.state is states.AttemptState.LOST:
                raise ItemFailed(
                    f"{it.where}: {exc}; counted as charged (${committed_usd(record):.4f}), never resubmitted "
                    "automatically: the next run makes this clip again as a new, budget-checked attempt",
                    [lost_observation(it, record)],
                ) from None
            raise ItemFailed(
                f"{it.where}: {exc}" + (f" (after {'; '.join(passed_over)})" if passed_over else "")
            ) from None
        return await store_generated(it, candidate, storage, result, journal, passed_over, plan.after_lost, kept)
    raise AssertionError("unreachable")
