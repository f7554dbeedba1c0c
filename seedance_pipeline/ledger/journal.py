"""``AttemptJournal``: what the clip generation reports, written to the attempt's record before it goes on.

The intent is durable before the submit POST leaves, the task id the moment the provider answers, the outcome
when done; each move is checked against the state machine (``states.py``).
"""

from __future__ import annotations

import logging

from seedance_pipeline.clip.generate import ClipResult
from seedance_pipeline.clip.prepare import PreparedRequest
from seedance_pipeline.core.errors import (
    AcceptanceUnknown,
    DownloadFailed,
    OverBudget,
    ProviderUnavailable,
    SubmitRejected,
    TaskFailed,
    TaskLost,
)
from seedance_pipeline.ledger.budget import SpendGuard
from seedance_pipeline.ledger.records import AttemptRecord
from seedance_pipeline.ledger.states import AttemptState
from seedance_pipeline.ledger.store import TaskStore
from seedance_pipeline.providers.states import TaskSnapshot

log = logging.getLogger(__name__)


class AttemptJournal:
    """The ``clip.generate.Journal`` for one clip partition: writes each step before moving on (only the task
    id's write may fail without stopping the clip: the id is kept and recorded with the outcome)."""

    def __init__(
        self,
        store: TaskStore,
        *,
        image: str,
        prompt: str,
        run_id: str | None,
        simulated: bool,
        record: AttemptRecord | None = None,
        guard: SpendGuard | None = None,
    ):
        self.store, self.image, self.prompt, self.run_id, self.simulated = store, image, prompt, run_id, simulated
        self.record = record  # set when resuming an existing attempt
        self.guard = guard

    def intent(self, prepared: PreparedRequest) -> None:
        """Durable before the submit POST; it is also the budget reservation (``OverBudget`` stops the submit).
        The intents of a run are written side by side; the guard decides on them one at a time."""
        self.record = self.store.create(
            prepared, image=self.image, prompt=self.prompt, run_id=self.run_id, simulated=self.simulated
        )
        if self.guard is not None and self.guard.limited:
            self.guard.admit(self.record)

    def accepted(self, prepared: PreparedRequest, snapshot: TaskSnapshot) -> None:
        assert self.record is not None
        record = self.record.moved(
            AttemptState.ACCEPTED,
            task_id=snapshot.task_id,
            poll_url=snapshot.poll_url,
            reported_cost_usd=snapshot.reported_cost_usd,
        )
        try:
            self.record = self.store.save(record)
        except OSError as exc:
            # The provider has the task and we hold its id: go on with it rather than lose it. The outcome's
            # write records the id. Until then readers find it in the open copy if that write got through
            # (``_newest``), else the record says "intent", which is never resubmitted.
            self.record = record
            log.warning(
                "attempt %s: recording task %s failed (%s: %s); continuing, the outcome will record it",
                record.attempt_id,
                snapshot.task_id,
                type(exc).__name__,
                exc,
            )

    def finished(self, prepared: PreparedRequest, result: ClipResult | None, error: Exception | None) -> None:
        if self.record is None:  # failed before the intent was written: nothing was sent
            return
        if result is not None:
            record = self.record.moved(
                AttemptState.SUCCEEDED,
                run_id=self.run_id,
                output=result.output,
                source_url=result.source_url,
                reported_cost_usd=result.reported_cost_usd,
                task_id=result.task_id,
                error=None,
            )
        else:
            record = self.record.moved(
                outcome_of(error, accepted=self.record.state is not AttemptState.INTENT),
                run_id=self.run_id,
                error=str(error),
                moderation=bool(getattr(error, "moderation", False)),
            )
        self.record = self.store.save(record)
        if self.guard is not None:
            self.guard.settled(self.record)


def outcome_of(error: Exception | None, *, accepted: bool) -> AttemptState:
    """Where an attempt stands after ``error``; anything we cannot be sure of stays open."""
    if not accepted:
        if isinstance(error, OverBudget):
            return AttemptState.BLOCKED  # stopped by a budget before anything was sent
        if isinstance(error, (SubmitRejected, ProviderUnavailable)) and not isinstance(error, AcceptanceUnknown):
            return AttemptState.REJECTED  # the provider said no, or was never reached: nothing exists
        return AttemptState.UNKNOWN  # the POST may have reached the provider
    if isinstance(error, TaskLost):
        return AttemptState.LOST  # forgotten by the provider after it ended: most likely billed
    if isinstance(error, TaskFailed):
        return AttemptState.FAILED
    if isinstance(error, DownloadFailed):
        return AttemptState.DOWNLOAD_FAILED  # paid for and not stored: stays open so it is collected again
    return AttemptState.ACCEPTED  # still running at the provider, or we lost track: resume by polling
