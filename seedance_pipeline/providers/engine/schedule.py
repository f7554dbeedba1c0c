"""When to ask a provider again about a task: pure arithmetic, the client sleeps."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable
from typing import NamedTuple

from seedance_pipeline.providers.engine.settings import ClientSettings


class Sample(NamedTuple):
    """One finished task's duration, known to lie between ``lo`` and ``hi`` seconds."""

    lo: float
    hi: float
    bracketed: bool  # ``lo`` is a poll that found it running (a real lower bound), not a guess
    at: float  # when it was learned (wall clock): the newest are kept


class PollSchedule:
    """When to ask again. Pure arithmetic; the engine sleeps.

    Each finished task teaches a bracket: its duration lies between the last poll that found it running and
    the poll that found it done. Two regimes, chosen from the last 50 brackets:
    - broad (or fewer than ``TIGHT_MIN_SAMPLES`` learned): first poll at 90 % of the shortest duration seen
      (the configured prior before any), then every ``poll_growth`` of the elapsed time;
    - tight, when the middle 80 % of the learned durations fits within one growth step of their median
      (a batch of one shape at one provider): polls at their 10th, 50th and 90th percentiles, then growth.
      A fixed-duration workload is then noticed within half the cluster's width, in about two polls,
      where the broad rule lands one poll early and the next a whole growth step late.
    The percentiles are those of the brackets taken as spans, not of their midpoints: a batch submitted
    together is asked at the same instants, and its shared midpoint sits below every real duration.

    Until some task has been seen running and then done (``probing``), nothing bounds the duration from below:
    the prior may be far too long. A few tasks then probe (``probe_delay``): their waits double from the floor up
    to the first regular poll, so a provider much faster than the prior is found in the first wave, at most
    log2(prior / floor) extra polls per probe. What a schedule learned can be kept and given to the next one
    (``samples``, ``seed``): a run starts from what earlier runs learned.
    """

    TIGHT_MIN_SAMPLES = 5
    KEEP = 50  # brackets learned from
    _POINTS = 5  # points spread over each bracket for the percentiles

    def __init__(self, settings: ClientSettings):
        self.settings = settings
        self._seen: deque[Sample] = deque(maxlen=self.KEEP)  # brackets of durations, oldest first
        self._tight: tuple[float, ...] | None = None

    def observe(self, done_by_s: float, running_at_s: float | None = None, *, at: float | None = None) -> None:
        """A task was seen finished ``done_by_s`` after it started, and still running at ``running_at_s``.

        Its duration lies between the two: learning ``done_by_s`` alone (when we noticed) would add our own
        detection delay to every later first poll, which then lands just before the task ends and the next
        one a whole interval after. Seen finished at the first poll, it may have taken much less: it is
        learned as 80-100 % of ``done_by_s``, so a provider that got faster moves the first poll earlier
        instead of holding it where tasks used to end.
        """
        bracketed = running_at_s is not None
        lo = running_at_s if running_at_s is not None else 0.8 * done_by_s
        self._seen.append(Sample(lo, done_by_s, bracketed, time.time() if at is None else at))
        self._tight = self._cluster()

    def seed(self, samples: Iterable[Sample]) -> None:
        """Start from brackets learned earlier (e.g. by earlier runs), oldest first; the newest ``KEEP`` stay."""
        self._seen.extend(sorted(samples, key=lambda x: x.at))
        self._tight = self._cluster()

    def samples(self) -> tuple[Sample, ...]:
        return tuple(self._seen)

    @property
    def probing(self) -> bool:
        """No task has been seen both running and done: nothing bounds the duration from below yet."""
        return not any(x.bracketed for x in self._seen)

    def probe_delay(self, elapsed_s: float, eta_s: float | None) -> float:
        """A probing task's next wait: the elapsed time again (polls at 1, 2, 4, 8 ... x the floor) until the
        first regular poll, then the regular schedule. A provider's ETA is taken as the regular rule takes it."""
        mark = 0.9 * self.expected_s
        if (eta_s is not None and eta_s > 0) or elapsed_s >= mark:
            return self.next_delay(elapsed_s, eta_s)
        return min(max(elapsed_s, self.settings.min_poll_interval_s), mark - elapsed_s)

    def _cluster(self) -> tuple[float, ...] | None:
        if len(self._seen) < self.TIGHT_MIN_SAMPLES:
            return None
        n = self._POINTS
        points = sorted(x.lo + (x.hi - x.lo) * (i + 0.5) / n for x in self._seen for i in range(n))
        q = tuple(points[round(p * (len(points) - 1))] for p in (0.1, 0.5, 0.9))
        return q if q[-1] - q[0] <= self.settings.poll_growth * q[1] else None

    @property
    def learned(self) -> tuple[tuple[float, float], ...]:
        """The (from, to) brackets of the durations learned, oldest first."""
        return tuple((x.lo, x.hi) for x in self._seen)

    @property
    def expected_s(self) -> float:
        """The shortest learned duration (each bracket's midpoint), else the configured prior."""
        return min((x.lo + x.hi) / 2 for x in self._seen) if self._seen else self.settings.expected_latency_s

    @property
    def floor_s(self) -> float:
        """Shortest wait: ``min_poll_interval_s``, lowered for tasks shorter than it can serve well.

        For minute-long tasks this is ``min_poll_interval_s``; for 2 s tasks a 1 s floor alone would add up
        to 50 % detection delay, so the floor is never more than ``poll_growth`` of the expected duration.
        Between the percentiles of a tight cluster (three polls at most) it is 2 % of the expected duration.
        """
        s = self.settings
        return min(s.min_poll_interval_s, (0.02 if self._tight else s.poll_growth) * self.expected_s)

    def next_delay(self, elapsed_s: float, eta_s: float | None) -> float:
        s = self.settings
        floor = self.floor_s
        if eta_s is not None and eta_s > 0:
            return min(max(eta_s, floor), s.max_eta_wait_s)
        marks = self._tight or (0.9 * self.expected_s,)
        for mark in marks:
            if elapsed_s < mark:
                return max(mark - elapsed_s, floor)
        return min(max(s.poll_growth * elapsed_s, floor), s.max_poll_interval_s)
