"""Common task states and the snapshot an adapter makes of any provider response."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any


class TaskState(str, Enum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    EXPIRED = "expired"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_STATES


TERMINAL_STATES = frozenset({TaskState.SUCCEEDED, TaskState.FAILED, TaskState.EXPIRED, TaskState.CANCELLED})


@dataclass(frozen=True)
class ListedTask:
    """One task of a provider's task list, with the request fields it was created with, in our names (prompt,
    duration, resolution, aspect_ratio as sent, generate_audio, camera_fixed, seed): what lets a submit whose
    answer was lost be found (docs/providers.md §8.1)."""

    task_id: str
    created_at: float | None  # epoch seconds
    request: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TaskSnapshot:
    """What one provider response says about one task, in common terms.

    ``raw_status`` keeps the provider's own word; an unknown word maps to RUNNING (bounded by the
    engine's deadline). ``eta_s`` is the provider's hint of remaining seconds when it gives one, as the
    soonest the task may be done (the engine waits that long before asking again).
    """

    task_id: str
    state: TaskState
    raw_status: str = ""
    output_url: str | None = None
    error: str | None = None
    error_code: str | None = None
    moderation: bool = False
    reported_cost_usd: float | None = None
    eta_s: float | None = None
    progress: float | None = None
    url_ttl_s: float | None = None
    poll_url: str | None = None  # absolute URL the provider says to poll (engine checks its host)
    extra: dict[str, Any] = field(default_factory=dict)
