"""A client's poll schedules: one per request shape, the probe slots while a shape is cold, and the wake-up of
the tasks asleep on a shape when it learns something (``schedule.py`` is the arithmetic; this holds them)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager

from seedance_pipeline.providers.engine.schedule import PollSchedule, Sample
from seedance_pipeline.providers.engine.settings import ClientSettings


class Schedules:
    PROBES = 1  # tasks per shape that probe at once while nothing bounds its duration (schedule.py)

    def __init__(self, settings: ClientSettings, sleep: Callable[[float], Awaitable[None]]):
        self.settings, self._sleep = settings, sleep
        self._by_shape: dict[str | None, PollSchedule] = {}
        self._learned: dict[str | None, asyncio.Event] = {}  # set (and replaced) when the shape learns
        self._probes: dict[str | None, int] = {}

    def of(self, shape: str | None) -> PollSchedule:
        if shape not in self._by_shape:
            self._by_shape[shape] = PollSchedule(self.settings)
        return self._by_shape[shape]

    def samples(self) -> dict[str, tuple[Sample, ...]]:
        """What each named shape's schedule learned (and was seeded with)."""
        return {shape: s.samples() for shape, s in self._by_shape.items() if shape is not None and s.samples()}

    def seed(self, samples: dict[str, list[Sample]]) -> None:
        for shape, known in samples.items():
            self.of(shape).seed(known)

    @contextmanager
    def probe_slot(self, shape: str | None, *, wanted: bool = True) -> Iterator[bool]:
        """Whether the task waited on inside probes: it is ``wanted`` (a task whose duration will be learned),
        its shape is cold and no other task probes it. The slot is given back on leaving."""
        took = wanted and self.of(shape).probing and self._probes.get(shape, 0) < self.PROBES
        if took:
            self._probes[shape] = self._probes.get(shape, 0) + 1
        try:
            yield took
        finally:
            if took:
                self._probes[shape] -= 1

    async def nap(self, delay: float, shape: str | None) -> bool:
        """Sleep ``delay``; False when woken earlier because the shape's schedule learned something."""
        learned = self._learned.setdefault(shape, asyncio.Event())
        nap, woken = asyncio.ensure_future(self._sleep(delay)), asyncio.ensure_future(learned.wait())
        try:
            done, _ = await asyncio.wait((nap, woken), return_when=asyncio.FIRST_COMPLETED)
        finally:
            nap.cancel()
            woken.cancel()
        return woken not in done

    def learn(self, shape: str | None, done_by_s: float, running_at_s: float | None) -> None:
        self.of(shape).observe(done_by_s, running_at_s)
        if (event := self._learned.pop(shape, None)) is not None:
            event.set()
