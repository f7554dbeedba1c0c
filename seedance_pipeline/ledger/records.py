"""The record of one provider attempt: what was asked, of whom, where it stands, what it cost."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel

from seedance_pipeline.ledger.states import AttemptState, check_move


class AttemptRecord(BaseModel):
    attempt_id: str
    fingerprint: str
    image: str
    prompt: str
    provider: str
    state: AttemptState
    simulated: bool = False
    run_id: str | None = None
    owner: str | None = None  # host:pid:start of the process working on it (ledger/liveness.py)
    task_id: str | None = None
    poll_url: str | None = None
    request: dict[str, Any]
    estimated_cost_usd: float
    estimate_is_assumption: bool = False
    reported_cost_usd: float | None = None
    created_at: float
    updated_at: float
    output: str | None = None
    source_url: str | None = None
    error: str | None = None
    moderation: bool = False
    # How an acceptance that was unknown got settled without a person (ledger/settle.py), None otherwise.
    settled: str | None = None

    @property
    def day(self) -> str:
        return self.attempt_id[:10]

    def moved(self, state: AttemptState, **fields: Any) -> AttemptRecord:
        """This record in ``state`` (with ``fields`` updated); ``IllegalTransition`` if the state machine forbids it."""
        check_move(self.state, state)
        return self.model_copy(update={**fields, "state": state})


def new_attempt_id(now: float | None = None) -> str:
    stamp = datetime.fromtimestamp(time.time() if now is None else now, tz=UTC)
    return f"{stamp:%Y-%m-%d}T{stamp:%H%M%S}Z-{uuid.uuid4().hex[:10]}"
