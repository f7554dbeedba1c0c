"""When to ask a provider again about a task: pure arithmetic, the client sleeps."""

from __future__ import annotations

from collections import deque

from seedance_pipeline.providers.engine.settings import ClientSettings


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
    """

    TIGHT_MIN_SAMPLES = 5
    _POINTS = 5  # points spread over each bracket for the percentiles

    def __init__(self, settings: ClientSettings):
        self.settings = settings
        self._seen: deque[tuple[float, float]] = deque(maxlen=50)  # (from, to) brackets of durations
        self._tight: tuple[float, ...] | None = None

    def observe(self, done_by_s: float, running_at_s: float | None = None) -> None:
        """A task was seen finished ``done_by_s`` after it started, and still running at ``running_at_s``.

        Its duration lies between the two: learning ``done_by_s`` alone (when we noticed) would add our own
        detection delay to every later first poll, which then lands just before the task ends and the next
        one a whole interval after. Seen finished at the first poll, it may have taken much less: it is
        learned as 80-100 % of ``done_by_s``, so a provider that got faster moves the first poll earlier
        instead of holding it where tasks used to end.
        """
        self._seen.append((0.8 * done_by_s if running_at_s is None else running_at_s, done_by_s))
        self._tight = self._cluster()

    def _cluster(self) -> tuple[float, ...] | None:
        if len(self._seen) < self.TIGHT_MIN_SAMPLES:
            return None
        n = self._POINTS
        points = sorted(lo + (hi - lo) * (i + 0.5) / n for lo, hi in self._seen for i in range(n))
        q = tuple(points[round(p * (len(points) - 1))] for p in (0.1, 0.5, 0.9))
        return q if q[-1] - q[0] <= self.settings.poll_growth * q[1] else None

    @property
    def learned(self) -> tuple[tuple[float, float], ...]:
        """The (from, to) brackets of the durations learned, oldest first."""
        return tuple(self._seen)

    @property
    def expected_s(self) -> float:
        """The shortest learned duration (each bracket's midpoint), else the configured prior."""
        return min((lo + hi) / 2 for lo, hi in self._seen) if self._seen else self.settings.expected_latency_s

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
