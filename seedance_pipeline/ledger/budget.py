"""Spend limits, enforced before each submit: per run and per UTC day, in USD.

The write-ahead intent record of an attempt is its reservation. Right after it is durable, the guard adds
up what is committed (estimates of attempts in flight, charges of delivered ones) and, if a limit would be
passed, the attempt ends as ``blocked`` with nothing sent. For the daily limit the guard re-reads the
day's records from storage, so runs in other processes count too; two runs racing for the last dollars
both see each other's reservation and both stop (never both spend).

Simulated attempts count against the limits like real ones, but only against other simulated attempts:
a demo never eats a production day's budget.
"""

from __future__ import annotations

import threading

import dagster as dg

from seedance_pipeline.core import settings
from seedance_pipeline.core.errors import OverBudget
from seedance_pipeline.ledger import states
from seedance_pipeline.ledger.records import AttemptRecord
from seedance_pipeline.ledger.store import TaskStore


def committed_usd(record: AttemptRecord) -> float:
    """What an attempt counts against a budget: its charge once delivered, its estimate while in flight."""
    if record.state in states.BILLED or record.state in states.IN_FLIGHT:
        return record.reported_cost_usd if record.reported_cost_usd is not None else record.estimated_cost_usd
    return 0.0


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
    reached the provider."""

    def __init__(self, store: TaskStore, *, per_run_usd: float | None, per_day_usd: float | None):
        self.store, self.per_run_usd, self.per_day_usd = store, per_run_usd, per_day_usd
        self.run_usd = 0.0
        self._day_cache: dict[str, tuple[str, AttemptRecord]] = {}  # path -> (stamp, record)
        # Journals call in from worker threads: each check-then-commit is one step, or two clips could
        # both pass on the same last dollars. Held by the journal around writing an intent and admitting it.
        self.lock = threading.RLock()

    @property
    def limited(self) -> bool:
        return self.per_run_usd is not None or self.per_day_usd is not None

    def admit(self, record: AttemptRecord) -> None:
        with self.lock:
            usd = committed_usd(record)
            if self.per_run_usd is not None and self.run_usd + usd > self.per_run_usd + 1e-9:
                raise OverBudget(
                    f"over the per-run budget: ${usd:.4f} for this clip + ${self.run_usd:.4f} already committed by "
                    f"this run > ${self.per_run_usd:.2f} ({settings.BUDGET_PER_RUN_USD.name} or the run's budget_usd);"
                    " nothing was sent"
                )
            if self.per_day_usd is not None:
                day_usd = self.day_usd(record)
                if day_usd > self.per_day_usd + 1e-9:
                    kind = "simulated" if record.simulated else "real"
                    raise OverBudget(
                        f"over the daily budget for {record.day} (UTC): ${day_usd:.4f} committed by {kind} attempts "
                        f"today (in flight or charged, this clip's ${usd:.4f} included) > ${self.per_day_usd:.2f} "
                        f"({settings.BUDGET_PER_DAY_USD.name}); nothing was sent"
                    )
            self.run_usd += usd

    def release(self, record: AttemptRecord) -> None:
        with self.lock:
            self.run_usd = max(0.0, self.run_usd - committed_usd(record))

    def day_usd(self, record: AttemptRecord) -> float:
        """Committed on ``record``'s UTC day by attempts as real (or as simulated) as it, from storage."""
        records = self.store.day_records_cached(record.day, self._day_cache)
        return sum(committed_usd(r) for r in records if r.simulated == record.simulated)
