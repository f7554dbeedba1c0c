"""What each clip's production starts from, decided before any slot is taken: reuse a stored clip, resume an
attempt the provider has (or may have), refuse one whose acceptance is unknown, or submit anew."""

from __future__ import annotations

from dataclasses import dataclass

import dagster as dg

from seedance_pipeline.ledger import states
from seedance_pipeline.ledger.liveness import owner_alive
from seedance_pipeline.ledger.records import AttemptRecord
from seedance_pipeline.ledger.store import TaskStore
from seedance_pipeline.planning.reuse import (
    Reuse,
    StoredClips,
    attempts_by_fingerprint,
    find_reusable,
    keep_current_version,
)
from seedance_pipeline.planning.select import Candidate, Item
from seedance_pipeline.storage.layout import sidecar_of
from seedance_pipeline.storage.resource import SeedanceStorage


class ItemFailed(Exception):
    """This clip cannot be made in this run (the message says why); the run's other clips go on. ``events`` are
    recorded on its partition all the same."""

    def __init__(self, message: str, events: list[dg.AssetObservation] | None = None):
        super().__init__(message)
        self.events = events or []


@dataclass
class Production:
    """What one item's production starts from, decided before any task is produced."""

    item: Item
    reuse: Reuse | None = None
    opened: tuple[Candidate, AttemptRecord] | None = None  # resume this attempt (poll, never resubmit)
    blocked: str | None = None  # acceptance unknown: a person decides
    kept: str | None = None  # where the clip a changed request replaces was kept
    after_lost: str | None = None  # the attempt of the same request a provider forgot: this one is new


# Items planned at once: a plan's lookups are storage reads on the shared worker threads, which the intents of the
# productions already started need too (benchmarks/README.md, M22).
PLANNING = 3


def resumed_first(store: TaskStore, items: list[Item]) -> list[Item]:
    """The items with a task at a provider (or that may be collected again), from tasks/open/: one listing, however
    many items, rather than each item's own lookups, so their productions can take the slots first."""
    opened = {
        record.fingerprint for record in store.open_records() if record.state in states.COLLECTABLE and record.task_id
    }
    return [it for it in items if it.record is not None or any(c.prepared.fingerprint in opened for c in it.candidates)]


def plan_production(
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
            return Production(it, blocked=storage_error(it, exc))
    kept = keep_current_version(storage, it.prompt, it.image, first.prepared.fingerprint, stored)
    newest = attempts[first.prepared.fingerprint][-1:] if opened is None else []
    after_lost = newest[0].attempt_id if newest and newest[0].state is states.AttemptState.LOST else None
    return Production(it, opened=opened, kept=kept, after_lost=after_lost)


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
            paid = rec.state is states.AttemptState.SUCCEEDED and rec.task_id
            if paid and rec.output and not storage.exists(sidecar_of(rec.output)):
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


def storage_error(it: Item, exc: OSError) -> str:
    return f"{it.where}: storage error ({type(exc).__name__}: {exc}); its task record keeps what is known; run again"
