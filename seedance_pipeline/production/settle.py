"""Settling attempts of unknown acceptance against the providers' task lists (``ledger/settle.py`` decides; this
module asks the providers and writes the verdicts). Run before anything is planned or collected: a task found
is collected at once, a clip whose submit provably never arrived is submitted again by the same run."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

import dagster as dg

from seedance_pipeline.core.errors import SeedanceError
from seedance_pipeline.ledger.liveness import Orphans
from seedance_pipeline.ledger.records import AttemptRecord
from seedance_pipeline.ledger.settle import TaskList, Verdict, decidable, never_sent, settle, settled_record, window
from seedance_pipeline.ledger.states import AttemptState
from seedance_pipeline.ledger.store import TaskStore
from seedance_pipeline.providers import ADAPTER_CLASSES
from seedance_pipeline.providers.resource import SeedanceProviders

log = logging.getLogger(__name__)

KNOWN_MARGIN_S = 600.0  # attempts started this long before the earliest window are read for their task ids


@dataclass
class Settlement:
    found: list[AttemptRecord] = field(default_factory=list)  # now accepted: collect them
    absent: list[AttemptRecord] = field(default_factory=list)  # never created: submitted again by the next plan
    undecided: list[Verdict] = field(default_factory=list)  # listable, not certain: a person decides
    unlistable: list[AttemptRecord] = field(default_factory=list)  # the provider has no list: a person decides
    errors: list[str] = field(default_factory=list)  # a list not read, a verdict not written: tried again next time

    def lines(self) -> list[str]:
        out = [
            f"settled {r.image}|{r.prompt} on {r.provider} (attempt {r.attempt_id}): {r.settled}"
            for r in self.found + self.absent
        ]
        out += [
            f"still unknown {v.record.image}|{v.record.prompt} on {v.record.provider} "
            f"(attempt {v.record.attempt_id}): {v.reason}"
            for v in self.undecided
        ]
        return out + self.errors


def settle_unknowns(
    store: TaskStore,
    providers: SeedanceProviders,
    instance: dg.DagsterInstance,
    *,
    now: float | None = None,
    orphans: Orphans | None = None,
) -> Settlement:
    """Ask each provider that lists its tasks about the attempts whose acceptance is in question, and record
    every verdict that is certain. Nothing is submitted here. ``orphans``: the caller's, to share its lookups."""
    now = time.time() if now is None else now
    orphans = orphans or Orphans(instance)
    result = Settlement()
    pending: dict[str, list[AttemptRecord]] = {}
    for record in store.confirmed_open(lambda r: decidable(r, orphans)):
        if record.state is AttemptState.INTENT and not store.written(record.attempt_id):
            _record(store, never_sent(record), result)
            continue
        adapter = ADAPTER_CLASSES.get(record.provider)
        listable = adapter is not None and adapter.list_visibility_s is not None
        # A list answers for where it is asked: a simulated attempt is not looked up at the real provider.
        if not listable or providers.route(record.provider).simulated != record.simulated:
            result.unlistable.append(record)
            continue
        pending.setdefault(record.provider, []).append(record)
    if pending:
        asyncio.run(_settle(store, providers, pending, now, result))
    return result


async def _settle(
    store: TaskStore,
    providers: SeedanceProviders,
    pending: dict[str, list[AttemptRecord]],
    now: float,
    result: Settlement,
) -> None:
    for provider, records in pending.items():
        adapter = ADAPTER_CLASSES[provider]
        try:
            async with providers.make_client(provider) as client:
                answer = await client.list_tasks()
        except SeedanceError as exc:
            result.errors.append(f"{provider}'s task list could not be read ({exc}); tried again next time")
            continue
        if answer is None:
            result.unlistable.extend(records)
            continue
        tasks, complete = answer
        listing = TaskList(
            provider,
            tasks,
            complete,
            float(adapter.list_visibility_s or 0),
            adapter.task_retention_s,
            shows_images=adapter.list_shows_images,
        )
        for verdict in settle(records, listing, _known_task_ids(store, provider, records, now), now=now):
            if not verdict.settled:
                result.undecided.append(verdict)
                continue
            _record(store, settled_record(verdict, provider), result)


def _record(store: TaskStore, settled: AttemptRecord, result: Settlement) -> None:
    """Write a certain verdict. A storage error is reported, not raised: the rest of the run, or the sensor's tick,
    goes on. It leaves the attempt as it was (still in tasks/open/, settled again next time: the verdict is the
    list's, not a guess), or its record written and its open copy left behind (``TaskStore.confirmed`` drops it)."""
    try:
        record = store.save(settled, claim=False)
    except OSError as exc:
        result.errors.append(
            f"{settled.image}|{settled.prompt} on {settled.provider} (attempt {settled.attempt_id}): "
            f"writing its verdict failed (storage error: {type(exc).__name__}: {exc}); the next run or sensor tick "
            "settles it again"
        )
        return
    (result.found if record.state is AttemptState.ACCEPTED else result.absent).append(record)
    log.info("attempt %s: %s", record.attempt_id, record.settled)


def _known_task_ids(store: TaskStore, provider: str, records: list[AttemptRecord], now: float) -> set[str]:
    """Task ids the ledger holds for this provider's attempts that could have made a task in the records' windows:
    those started since shortly before the earliest window, and every attempt of the same requests."""
    since = min(window(r, now)[0] for r in records) - KNOWN_MARGIN_S
    held = store.records_since(since) + store.open_records()
    for record in records:
        held += store.for_fingerprint(record.fingerprint)
    return {r.task_id for r in held if r.provider == provider and r.task_id}
