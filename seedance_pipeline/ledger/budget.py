"""Spend limits, enforced before each submit: per run and per UTC day, in USD.

The write-ahead intent record of an attempt is its reservation. Right after it is durable, the guard adds
up what is committed (estimates of attempts in flight, charges of delivered ones) and, if a limit would be
passed, the attempt ends as ``blocked`` with nothing sent. For the daily limit the guard reads the day's
records from storage after the intent is written (``day_spend.py``), so runs in other processes count too; two
runs racing for the last dollars both see each other's reservation and both stop (never both spend).

Simulated attempts count against the limits like real ones, but only against other simulated attempts:
a demo never eats a production day's budget.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable

import dagster as dg

from seedance_pipeline.core import settings
from seedance_pipeline.core.errors import OverBudget
from seedance_pipeline.ledger import states
from seedance_pipeline.ledger.day_spend import DayRecords, DaySpent, committed_usd
from seedance_pipeline.ledger.records import AttemptRecord
from seedance_pipeline.ledger.store import TaskStore


class SpendPolicy(dg.ConfigurableResource):
    """Budgets in USD; None means no limit. ``auto_backfill_usd`` lets the storage sensor launch the backfill
    of clips an edit made outdated by itself when its forecast is at most this much (None: never)."""

    per_run_usd: float | None = None
    per_day_usd: float | None = None
    auto_backfill_usd: float | None = None

    @classmethod
    def from_env(cls) -> SpendPolicy:
        return cls(
            per_run_usd=settings.BUDGET_PER_RUN_USD.read(),
            per_day_usd=settings.BUDGET_PER_DAY_USD.read(),
            auto_backfill_usd=settings.AUTO_BACKFILL_BUDGET_USD.read(),
        )


class SpendGuard:
    """The budget check of one run. Call ``admit`` once the intent is durable, ``release`` if it then never
    reached the provider. Intents are written concurrently; their checks are decided one at a time, each seeing
    every decision before it."""

    def __init__(
        self, store: TaskStore, *, per_run_usd: float | None, per_day_usd: float | None, run_id: str | None = None
    ):
        self.store, self.per_run_usd, self.per_day_usd, self.run_id = store, per_run_usd, per_day_usd, run_id
        self.run_usd = 0.0
        self._days = DayRecords(store)
        # attempt id -> (simulated, what this guard let it commit, as last settled); None: stopped, or never sent
        self._decided: dict[str, tuple[bool, float] | None] = {}
        # (UTC day, simulated) -> the sum of ``_decided``'s amounts: a decision adds it up without going through them
        self._held: dict[tuple[str, bool], float] = {}
        # This guard's intents: it knows what each commits, so a reading of the day never reads their records back.
        self._mine: set[str] = set()
        # Journals call in from worker threads: each check-then-commit is one step, or two clips could both pass on
        # the same last dollars. Held for the decision only: the day's records are read before it.
        self.lock = threading.RLock()

    @property
    def limited(self) -> bool:
        return self.per_run_usd is not None or self.per_day_usd is not None

    def admit(self, record: AttemptRecord) -> None:
        """Raises ``OverBudget`` if ``record`` (an intent just made durable) would pass a limit."""
        # The day's records as read after this intent was written (ledger/day_spend.py says why and how).
        self._mine.add(record.attempt_id)
        try:
            day = self._days.read(record.day, time.monotonic(), self._mine) if self.per_day_usd is not None else None
        except OSError as exc:  # nothing was sent: a limit that cannot be checked stops the clip, no person needed
            with self.lock:
                self._hold(record.attempt_id, None)
            raise OverBudget(
                f"the daily budget ({settings.BUDGET_PER_DAY_USD.name}) could not be checked: the day's task records "
                f"could not be read ({type(exc).__name__}: {exc}); nothing was sent"
            ) from exc
        with self.lock:
            usd = committed_usd(record)
            try:
                if self.per_run_usd is not None and self.run_usd + usd > self.per_run_usd + 1e-9:
                    raise OverBudget(
                        f"over the per-run budget: ${usd:.4f} for this clip + ${self.run_usd:.4f} already committed "
                        f"by this run > ${self.per_run_usd:.2f} ({settings.BUDGET_PER_RUN_USD.name} or the run's "
                        "budget_usd); nothing was sent"
                    )
                if self.per_day_usd is not None and day is not None:
                    day_usd = usd + self._committed(day, record)
                    if day_usd > self.per_day_usd + 1e-9:
                        kind = "simulated" if record.simulated else "real"
                        raise OverBudget(
                            f"over the daily budget for {record.day} (UTC): ${day_usd:.4f} committed by {kind} "
                            f"attempts today (in flight or charged, this clip's ${usd:.4f} included) > "
                            f"${self.per_day_usd:.2f} ({settings.BUDGET_PER_DAY_USD.name}); nothing was sent"
                        )
            except OverBudget:
                self._hold(record.attempt_id, None)
                raise
            self.run_usd += usd
            self._hold(record.attempt_id, (record.simulated, usd))

    def release(self, record: AttemptRecord) -> None:
        """``record`` never reached the provider: what this guard admitted it at is free again."""
        self._settle(record, None)

    def settled(self, record: AttemptRecord) -> None:
        """``record``'s outcome, as the journal wrote it: never sent releases its reservation; otherwise both limits
        count what it commits now (its charge, or nothing if it failed free)."""
        self._settle(record, None if record.state in states.NEVER_SENT else committed_usd(record))

    def _settle(self, record: AttemptRecord, usd: float | None) -> None:
        # What it was admitted (or last settled) at is the amount to take back; the record as saved now commits its
        # outcome's amount (a refusal's record commits 0, so it cannot say what was reserved).
        with self.lock:
            held = self._decided.get(record.attempt_id)
            if held is not None:
                self.run_usd = max(0.0, self.run_usd - held[1] + (usd or 0.0))
                self._hold(record.attempt_id, None if usd is None else (record.simulated, usd))
            elif usd is None:  # stopped before (it holds nothing), or never decided here: counts nothing from now
                self._hold(record.attempt_id, None)

    def _hold(self, attempt_id: str, decided: tuple[bool, float] | None) -> None:
        """Under ``lock``: what ``attempt_id`` commits as this guard decided it, and the day's sum with it."""
        before = self._decided.get(attempt_id)
        if before is not None:
            self._held[attempt_id[:10], before[0]] -= before[1]
        if decided is not None:
            key = (attempt_id[:10], decided[0])
            self._held[key] = self._held.get(key, 0.0) + decided[1]
        self._decided[attempt_id] = decided

    def day_usd(self, record: AttemptRecord) -> float:
        """Committed on ``record``'s UTC day by attempts as real (or as simulated) as it, from storage, ``record``
        included."""
        day = self._days.read(record.day, time.monotonic(), self._mine)
        with self.lock:
            return committed_usd(record) + self._committed(day, record)

    def _committed(self, day: DaySpent, record: AttemptRecord) -> float:
        """What the day's other attempts as real (or as simulated) as ``record`` commit: all as read, except this
        run's own, taken as this guard decided and settled them (their records are never read back). An intent it
        stopped or released counts nothing though its record may still say intent, one it admitted counts what it
        last settled at, and an intent of this run still waiting for its decision is left to that decision, which
        comes after this one and sees it. Neither the day's size nor the run's costs anything here: the sums come
        with the reading and with each decision (``_held``); only this run's attempts the reading holds are gone
        through, and a reading never reads back the attempts this guard decided."""
        simulated = record.simulated
        total = sum(usd for (_, kind), usd in day.totals.items() if kind == simulated)
        total += self._held.get((record.day, simulated), 0.0)
        if self.run_id is not None:  # this run's records carry its id: the ones the reading holds
            read_back: Iterable[str] = day.runs.get(self.run_id, ())
        else:  # no run id to find them by: whichever of this guard's attempts the reading holds
            read_back = [a for a in self._decided if a in day.spent]
        for attempt_id in {*read_back, record.attempt_id}:
            read = day.spent.get(attempt_id)
            if read is None or read.simulated != simulated:
                continue
            total -= read.usd  # counted as decided (``_held``), as undecided (nothing), or as read, below
            if attempt_id != record.attempt_id and attempt_id not in self._decided:
                total += 0.0 if read.state in states.UNDECIDED else read.usd
        return total
