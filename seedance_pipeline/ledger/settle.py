"""Settling an acceptance that was unknown from the provider's own list of recent tasks (docs/providers.md §8.1):
a task found there is the attempt's (collected like any accepted task, never submitted again); one that provably
was never created lets the clip be submitted again. Anything less certain stays with a person.

The rules, for one attempt whose submit POST may have reached the provider and whose answer was lost:

* Its window is from its intent (written before the POST) to when it was recorded unknown; for an intent whose
  process died, to now. ``SKEW_S`` either side covers the provider's clock.
* A listed task *is* the attempt when every listed request field equals the attempt's, the image digest too
  (``image_sent_sha256``: the exact reference sent), it was created inside the window, no other attempt of the
  same request holds its id, and it is the only such task and no other attempt claims it. A list that shows no
  inputs (ModelArk: neither prompt nor image) proves a match only by an explicit seed the attempt chose, equal to
  the listed task's; a random seed (-1) is never compared, and such a match stays with a person.
* The attempt was *never created* when the list reaches back past the window's start, the window ended longer
  ago than the provider takes to show a task (``list_visibility_s``), the attempt is younger than the provider
  keeps tasks, and no task in the window unknown to the ledger has the attempt's request fields apart from the
  image (a provider that rewrote the image reference would hide a match: never guessed as absent).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from seedance_pipeline.ledger import states
from seedance_pipeline.ledger.records import AttemptRecord
from seedance_pipeline.ledger.states import AttemptState
from seedance_pipeline.providers.states import ListedTask

SKEW_S = 120.0  # clock difference tolerated between us and the provider
IMAGE_FIELD = "image_sent_sha256"


@dataclass(frozen=True)
class TaskList:
    """One answer of a provider's task list, with what the provider documents about lists."""

    provider: str
    tasks: list[ListedTask]
    complete: bool  # not cut at a page: every task the provider still keeps is in it
    visibility_s: float  # a task is in the list this long after its submit at the latest
    retention_s: float | None  # tasks older than this are gone from the list (None: not documented)
    shows_images: bool = True  # the listed tasks carry the image reference they were sent (False: ModelArk)


@dataclass(frozen=True)
class Verdict:
    record: AttemptRecord
    task: ListedTask | None = None  # found: the task the provider made of it
    absent: bool = False  # never created: safe to submit again
    reason: str = ""  # why it stays undecided, for the person who decides

    @property
    def settled(self) -> bool:
        return self.task is not None or self.absent


def decidable(record: AttemptRecord, owner_dead: Callable[[AttemptRecord], bool]) -> bool:
    """Whether a record's acceptance is in question: recorded unknown, or an intent whose process died
    (``owner_dead`` is asked only then: it looks the run up)."""
    return record.state in states.AWAITING_PERSON or (record.state in states.NEEDS_DECISION and owner_dead(record))


def window(record: AttemptRecord, now: float) -> tuple[float, float]:
    """When the attempt's task would have been created, if the provider created one."""
    end = record.updated_at if record.state in states.AWAITING_PERSON else now
    return record.created_at - SKEW_S, end + SKEW_S


def _fields(record: AttemptRecord, task: ListedTask, shows_images: bool = True) -> tuple[bool, bool]:
    """(the request fields the list shows, apart from the image, equal the attempt's; the image's too, or where
    the list shows no images, an explicit seed the attempt chose). A random seed (-1) is not compared: the list
    shows the seed the provider drew."""
    ours = record.request
    same = all(
        ours.get(k) == v
        for k, v in task.request.items()
        if k != IMAGE_FIELD and ours.get(k) is not None and not (k == "seed" and ours.get(k) == -1)
    )
    if not shows_images:
        seed = ours.get("seed")
        return same, same and isinstance(seed, int) and seed >= 0 and task.request.get("seed") == seed
    image = task.request.get(IMAGE_FIELD)
    return same, same and image is not None and image == ours.get(IMAGE_FIELD)


def settle(
    records: Iterable[AttemptRecord],
    listing: TaskList,
    known_task_ids: set[str],
    *,
    now: float,
) -> list[Verdict]:
    """A verdict for each attempt of ``listing.provider`` among ``records``; ``known_task_ids`` are the task ids
    the ledger holds for attempts of this provider started in or after the earliest window."""
    pending = [r for r in records if r.provider == listing.provider]
    oldest = min((t.created_at for t in listing.tasks if t.created_at is not None), default=None)
    candidates: dict[str, list[ListedTask]] = {}
    lookalikes: dict[str, list[ListedTask]] = {}
    for record in pending:
        start, end = window(record, now)
        inside = [
            t
            for t in listing.tasks
            if t.task_id not in known_task_ids and t.created_at is not None and start <= t.created_at <= end
        ]
        matched = [(t, _fields(record, t, listing.shows_images)) for t in inside]
        candidates[record.attempt_id] = [t for t, (_, exact) in matched if exact]
        lookalikes[record.attempt_id] = [t for t, (same, exact) in matched if same and not exact]
    claims: dict[str, int] = {}
    for found in candidates.values():
        for t in found:
            claims[t.task_id] = claims.get(t.task_id, 0) + 1
    verdicts = []
    for record in pending:
        found, alike = candidates[record.attempt_id], lookalikes[record.attempt_id]
        start, end = window(record, now)
        if len(found) == 1 and claims[found[0].task_id] == 1:
            verdicts.append(Verdict(record, task=found[0]))
        elif len(found) == 1:
            verdicts.append(Verdict(record, reason=f"task {found[0].task_id} matches another open attempt too"))
        elif found:
            ids = ", ".join(t.task_id for t in found)
            verdicts.append(Verdict(record, reason=f"{len(found)} listed tasks match it exactly ({ids})"))
        elif alike and not listing.shows_images:
            ids = ", ".join(t.task_id for t in alike)
            reason = (
                f"listed tasks {ids} have its request fields, but the list shows neither prompt nor image and its "
                "seed was random: not provably its task"
            )
            verdicts.append(Verdict(record, reason=reason))
        elif alike:
            ids = ", ".join(t.task_id for t in alike)
            verdicts.append(Verdict(record, reason=f"listed tasks {ids} have its request but another image"))
        elif not listing.complete and (oldest is None or oldest > start):
            verdicts.append(Verdict(record, reason="the task list (one page) does not reach back to its submit"))
        elif now - (end - SKEW_S) < listing.visibility_s:
            verdicts.append(
                Verdict(record, reason=f"too recent: a task shows in the list up to {listing.visibility_s:.0f} s late")
            )
        elif listing.retention_s is not None and now - start > listing.retention_s:
            verdicts.append(Verdict(record, reason="older than the provider keeps tasks"))
        else:
            verdicts.append(Verdict(record, absent=True))
    return verdicts


NEVER_SENT_NOTE = "its record was never written, so its submit was never sent: submitting it pays once"


def never_sent(record: AttemptRecord) -> AttemptRecord:
    """An orphaned intent whose record was never written (``TaskStore.written``), settled: nothing was sent."""
    return record.moved(
        AttemptState.REJECTED, settled=NEVER_SENT_NOTE, error=f"{record.error or 'intent'} [{NEVER_SENT_NOTE}]"
    )


def settled_record(verdict: Verdict, provider: str) -> AttemptRecord:
    """The attempt's record as the verdict settles it (only for a settled verdict). A found task belongs to no
    process any more (its submitter gave up on it): whoever finds it orphaned collects it."""
    record = verdict.record
    if verdict.task is not None:
        note = f"found in {provider}'s task list as task {verdict.task.task_id}"
        return record.moved(AttemptState.ACCEPTED, task_id=verdict.task.task_id, settled=note, owner=None, run_id=None)
    note = f"not in {provider}'s task list: never created, so submitting it again pays once"
    return record.moved(AttemptState.REJECTED, settled=note, error=f"{record.error or 'acceptance unknown'} [{note}]")
