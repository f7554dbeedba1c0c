"""How many tasks a provider client keeps in flight, and how far apart its submits go: adapted to the provider.

A provider's entry tier may allow only a few tasks a minute and a few at once, and say so with a 429 that has no
Retry-After (WaveSpeed, docs/providers.md §4.5, §8.2). The limit is additive-increase, multiplicative-decrease,
shared by every clip of a run at that provider:

- a 429 halves the tasks allowed in flight (at least one) and, when it carries no Retry-After, doubles the spacing
  between submits (from ``min_interval_s``, at most ``max_interval_s``): one such step per spacing, however many
  clips met the same 429;
- each accepted submit raises the tasks allowed by ``1 / allowed`` (back up to the configured cap) and shortens
  the spacing by a tenth.

A 429 with Retry-After is the provider's own pacing: that wait is honoured and the spacing left as it is.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Awaitable, Callable


class AdaptiveLimit:
    GROWTH = 1.25  # spacing after a 429 without Retry-After: at least this times the spacing that met it
    DECAY = 0.98  # spacing after an accepted submit: times this (probing for more, slowly)
    SEEN = 8  # accepted submits the rate is measured over

    def __init__(
        self,
        cap: int,
        *,
        min_interval_s: float,
        max_interval_s: float,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.cap = cap
        self.allowed = float(cap)
        self.interval_s = 0.0
        self.min_interval_s, self.max_interval_s = min_interval_s, max_interval_s
        self.in_flight = 0
        self.throttles = 0  # 429s met
        self._sleep, self._clock = sleep, clock
        self._next_submit_at = 0.0
        self._accepted_at: deque[float] = deque(maxlen=self.SEEN)
        self._last_step = -float("inf")
        self._waiting: deque[asyncio.Future[None]] = deque()  # clips waiting for a place, first come first served
        self._pacing = asyncio.Lock()

    # -- tasks in flight: ``async with limit:`` from submit to the task's end ----------------------------
    # A place that frees is handed to the first clip waiting, which is woken holding it: the others sleep on. (A
    # condition woken for all at every task's end cost O(clips waiting) a task, the whole run's clips squared, M24.)

    async def __aenter__(self) -> AdaptiveLimit:
        if not self._waiting and self.in_flight < self._places():
            self.in_flight += 1
            return self
        place = asyncio.get_running_loop().create_future()
        self._waiting.append(place)
        self._hand_over()  # a place may be free behind a cancelled clip not yet out of the queue
        try:
            await place
        except asyncio.CancelledError:
            if place.done() and not place.cancelled():  # handed a place, then cancelled before it woke
                self.in_flight -= 1
            else:  # a linear search, once per clip cancelled while waiting (gone if a hand-over skipped it)
                with contextlib.suppress(ValueError):
                    self._waiting.remove(place)
            self._hand_over()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.in_flight -= 1
        self._hand_over()

    def _places(self) -> int:
        return max(1, int(self.allowed))

    def _hand_over(self) -> None:
        """The free places to the clips waiting longest (``in_flight`` counts them from here)."""
        while self._waiting and self.in_flight < self._places():
            place = self._waiting.popleft()
            if not place.done():
                self.in_flight += 1
                place.set_result(None)

    # -- submit spacing ----------------------------------------------------------------------------------

    async def pace(self) -> None:
        """Wait until the next submit may go, and book the one after it ``interval_s`` later."""
        async with self._pacing:
            wait = self._next_submit_at - self._clock()
            if wait > 0:
                await self._sleep(wait)
            self._next_submit_at = self._clock() + self.interval_s

    def throttled(self, *, retry_after: bool) -> bool:
        """A 429: fewer tasks in flight and, without a Retry-After, slower submits. True if this changed them
        (once per spacing: the 429s of one burst are one signal)."""
        self.throttles += 1
        now = self._clock()
        if now - self._last_step < max(self.interval_s, self.min_interval_s):
            return False
        self._last_step = now
        self.allowed = max(1.0, self.allowed / 2)
        if not retry_after:
            # While throttled, the submits the provider took came as fast as it lets them: their spacing is its
            # rate. Never faster than what just met a 429, and never less than the first step.
            seen = list(self._accepted_at)
            measured = (seen[-1] - seen[0]) / (len(seen) - 1) if len(seen) >= 3 else 0.0
            self.interval_s = min(
                self.max_interval_s, max(self.min_interval_s, measured, self.GROWTH * self.interval_s)
            )
            self._next_submit_at = max(self._next_submit_at, now + self.interval_s)
        return True

    async def accepted(self) -> None:
        """A submit the provider took: back up slowly."""
        self._accepted_at.append(self._clock())
        self.allowed = min(float(self.cap), self.allowed + 1 / self.allowed)
        shorter = self.interval_s * self.DECAY
        self.interval_s = 0.0 if shorter < self.min_interval_s / 10 else shorter
        self._hand_over()

    def describe(self) -> str:
        spacing = f"one submit every {self.interval_s:.1f} s" if self.interval_s else "no spacing between submits"
        return f"at most {max(1, int(self.allowed))} task(s) in flight, {spacing}"
