"""Waiting for a task: polls on the schedule of its request shape until the task is terminal.

The wait half of ``ProviderClient`` (mixed in; it provides ``poll``, ``_error``, ``settings`` and ``schedules``).
When to poll is ``schedule.py``'s question and which schedule ``shapes.py``'s; this loop only keeps to them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from seedance_pipeline.core.errors import PollTimeout, ProviderError
from seedance_pipeline.providers.engine.settings import ClientSettings
from seedance_pipeline.providers.engine.shapes import Schedules
from seedance_pipeline.providers.states import TaskSnapshot, TaskState


class Waiting:
    settings: ClientSettings
    schedules: Schedules

    def _error(self, cls: type[ProviderError], message: str, **kw: Any) -> ProviderError:
        raise NotImplementedError

    async def poll(self, task_id: str, poll_url: str | None = None) -> TaskSnapshot:
        raise NotImplementedError

    async def wait(
        self,
        snapshot: TaskSnapshot,
        *,
        started_at: float | None = None,
        on_update: Callable[[TaskSnapshot], Any] | None = None,
        learn: bool = True,
        shape: str | None = None,
    ) -> TaskSnapshot:
        """Poll until the task is terminal; facts from earlier answers (cost, poll URL) are kept.

        ``shape`` names the request's shape (resolution, duration, audio): its tasks share one schedule.
        ``learn=False`` for a task that started before ``started_at`` (one resumed after a crash): its
        duration is unknown, and learning the part we saw would pull every later first poll early."""
        start = time.monotonic() if started_at is None else started_at
        schedule = self.schedules.of(shape)
        snap = snapshot
        running_at = None  # when the task was last asked about and still running
        with self.schedules.probe_slot(shape, wanted=learn) as probe:
            while not snap.state.terminal:
                elapsed = time.monotonic() - start
                if elapsed > self.settings.task_deadline_s:
                    raise self._error(
                        PollTimeout,
                        f"task {snap.task_id} still {snap.raw_status or snap.state.value} after {elapsed:.0f} s"
                        f" (deadline {self.settings.task_deadline_s:.0f} s)",
                    )
                # The next poll is due ``delay`` after this moment; woken because the schedule learned meanwhile,
                # the delay is decided again from this same moment (the next poll may come sooner, or later).
                while True:
                    rule = schedule.probe_delay if probe and schedule.probing else schedule.next_delay
                    left = elapsed + rule(elapsed, snap.eta_s) - (time.monotonic() - start)
                    if left <= 0 or await self.schedules.nap(left, shape):
                        break
                asked_at = time.monotonic() - start
                new = await self.poll(snap.task_id, snap.poll_url)
                new = replace(
                    new,
                    poll_url=new.poll_url or snap.poll_url,
                    reported_cost_usd=new.reported_cost_usd
                    if new.reported_cost_usd is not None
                    else snap.reported_cost_usd,
                )
                if on_update is not None and (new.state, new.progress) != (snap.state, snap.progress):
                    on_update(new)
                if not new.state.terminal:
                    running_at = asked_at
                snap = new
        if snap.state is TaskState.SUCCEEDED and learn:
            self.schedules.learn(shape, time.monotonic() - start, running_at)
        return snap
