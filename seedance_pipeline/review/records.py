"""What a review file holds: the decisions people made on the takes of one (image, prompt) pair.

    {"image": "tower", "prompt": "dusk-dolly",
     "decisions": [{"fingerprint": "<64 hex>", "take": 1, "state": "rejected", "reviewer": "ana",
                    "at": "2026-12-03T06:40:00Z", "note": "the tower melts", "retake": true}]}

A decision applies to one take: the clip made from one request (its fingerprint). Decisions are appended, never
rewritten; the newest for a fingerprint is that take's state, and a take with none is pending, so a new take of
the pair starts pending whatever its predecessors were.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

ReviewState = Literal["pending", "approved", "rejected"]
PENDING: ReviewState = "pending"
APPROVED: ReviewState = "approved"
REJECTED: ReviewState = "rejected"
REVIEW_STATES: tuple[ReviewState, ...] = (PENDING, APPROVED, REJECTED)


class Decision(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    fingerprint: str = Field(pattern=r"^[0-9a-f]{64}$", description="the take's request fingerprint")
    take: int = Field(ge=1, description="1 for the pair's first take, then one more per new take")
    state: Literal["approved", "rejected"]
    reviewer: str = Field(min_length=1)
    at: AwareDatetime
    note: str = ""
    retake: bool = Field(default=True, description="rejected only: False when the pair is not to be made again")

    @model_validator(mode="after")
    def _rejection_says_why(self) -> Decision:
        if self.state == "rejected" and not self.note.strip():
            raise ValueError("a rejection needs a note saying what is wrong with the take")
        if self.state == "approved" and not self.retake:
            raise ValueError("retake: false applies to a rejection only")
        return self


class PairReviews(BaseModel):
    model_config = ConfigDict(extra="forbid")

    image: str
    prompt: str
    decisions: list[Decision] = []

    def latest(self, fingerprint: str) -> Decision | None:
        return next((d for d in reversed(self.decisions) if d.fingerprint == fingerprint), None)

    def state_of(self, fingerprint: str) -> ReviewState:
        decision = self.latest(fingerprint)
        return decision.state if decision else "pending"


def now() -> datetime:
    return datetime.now().astimezone().replace(microsecond=0)
