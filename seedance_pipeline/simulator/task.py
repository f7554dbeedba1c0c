"""A simulated task: fixed timing at creation, state read off the clock, the render's future.

A task whose outcome is success but whose render is not finished at ``done`` stays "running".
"""

from __future__ import annotations

import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

# Prompt markers that force a task outcome (besides the moderation/expire/fail fault kinds).
# ``[sim:frozen]`` and the other output faults (config.CONTENT_KINDS) make a successful task with a bad clip.
OUTCOME_MARKERS = {
    "[sim:moderation]": "moderation",
    "[sim:expire]": "expire",
    "[sim:fail]": "fail",
    "[sim:wrong_image]": "wrong_image",
    "[sim:frozen]": "frozen",
    "[sim:black]": "black",
    "[sim:silent]": "silent",
}


def outcome_from_prompt(prompt: str) -> str | None:
    for marker, outcome in OUTCOME_MARKERS.items():
        if marker in prompt:
            return outcome
    return None


@dataclass
class Task:
    id: str
    provider: str
    prompt: str
    width: int
    height: int
    duration_s: int
    audio: bool
    seed: int
    resolution: str
    ratio: str  # the explicit ratio used for the pixel size (adaptive/auto already resolved)
    image_sha256: str
    outcome: str  # success | moderation | expire | fail
    created_wall: float
    created_mono: float
    start_mono: float
    done_mono: float
    output_url_ttl_s: float | None
    wall_offset: float  # wall clock = monotonic + this (one value per simulator)
    meta: dict[str, Any] = field(default_factory=dict)  # provider-specific (RunPod: sync, record TTL)
    content: str | None = None  # an output fault (config.CONTENT_KINDS) the successful clip was rendered with
    render: Future | None = None
    render_done_mono: float | None = None
    cancelled_mono: float | None = None

    # --- state read off the clock ---
    def phase(self, now: float | None = None) -> str:
        """queued | running | succeeded | failed | moderated | expired | cancelled."""
        now = time.monotonic() if now is None else now
        if self.cancelled_mono is not None:
            return "cancelled"
        if now < self.start_mono:
            return "queued"
        if now < self.done_mono:
            return "running"
        if self.outcome == "success":
            if self.render is None or not self.render.done() or self.render_done_mono is None:
                return "running"
            return "failed" if self.render.exception() is not None else "succeeded"
        return {"moderation": "moderated", "expire": "expired"}.get(self.outcome, "failed")

    def is_terminal(self, now: float | None = None) -> bool:
        return self.phase(now) not in ("queued", "running")

    def render_error(self) -> str | None:
        if self.render is not None and self.render.done() and self.render.exception() is not None:
            return str(self.render.exception())
        return None

    def finished_mono(self) -> float | None:
        """When the task became terminal (None while it is not)."""
        if self.cancelled_mono is not None:
            return self.cancelled_mono
        if not self.is_terminal():
            return None
        if self.outcome == "success" and self.render_done_mono is not None:
            return max(self.done_mono, self.render_done_mono)
        return self.done_mono

    def wall(self, mono: float) -> float:
        """Wall-clock time of a monotonic instant (one offset per simulator: consistent across tasks)."""
        return self.wall_offset + mono

    def finished_wall(self) -> float | None:
        fm = self.finished_mono()
        return None if fm is None else self.wall(fm)

    def output_expires_wall(self) -> float | None:
        fw = self.finished_wall()
        if fw is None or self.output_url_ttl_s is None:
            return None
        return fw + self.output_url_ttl_s

    def video(self) -> bytes | None:
        if self.phase() != "succeeded":
            return None
        return self.render.result()  # type: ignore[union-attr]

    def eta_s(self, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        return max(0.0, self.done_mono - now)

    def progress(self, now: float | None = None) -> float:
        """0..1 through the generation (0 while queued)."""
        now = time.monotonic() if now is None else now
        if now <= self.start_mono:
            return 0.0
        span = self.done_mono - self.start_mono
        return 1.0 if span <= 0 else min(1.0, (now - self.start_mono) / span)

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "provider": self.provider,
            "phase": self.phase(),
            "outcome": self.outcome,
            "content_fault": self.content,
            "prompt": self.prompt,
            "width": self.width,
            "height": self.height,
            "duration_s": self.duration_s,
            "audio": self.audio,
            "seed": self.seed,
            "resolution": self.resolution,
            "ratio": self.ratio,
            "image_sha256": self.image_sha256,
            "created_at": self.created_wall,
            "starts_at": self.wall(self.start_mono),
            "done_at": self.wall(self.done_mono),
            "finished_at": self.finished_wall(),
            "meta": {k: v for k, v in self.meta.items() if isinstance(v, (str, int, float, bool, type(None)))},
        }
