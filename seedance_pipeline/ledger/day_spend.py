"""``DayRecords``: what each UTC day's attempts commit as storage holds them, read for many intents at once, at a
cost that grows with the attempts started lately, not with the day's.

The daily budget checks every intent against the day's records (runs in other processes count), and its promise
that two runs racing for the last dollars never both spend needs each check to read storage after its own
intent was written. Read per intent, the whole day's folder was listed for every submit, one intent at a time:
100 intents at 10,000 attempts in the day took 11 s on a local disk and 7 minutes on S3 (benchmarks/README.md,
"Measurements behind the code", M21). Here:

- One reading at a time serves every intent written before it started (``read(day, since)``): the intents of a
  wave wait for one or two readings between them, not for one each.
- A reading lists only the records whose ids (which begin with their attempt's start, UTC) fall in the ten minutes
  blocks since the previous reading, ``SKEW_S`` earlier and later for other machines' clocks, and reads only the files
  whose stamp changed. Every ``FULL_EVERY_S`` it lists the whole day, for an older attempt whose record changed
  since (a task delivered at a reported price, or failed free): until then it counts at what it was last read.
- What a whole listing read is kept in storage (``layout.day_spend``, a cache), with when it started: the next
  process reads that file and lists the minutes since, as a reading does, not the whole day, until the listing it
  kept is ``FULL_EVERY_S`` old.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from types import MappingProxyType
from typing import TYPE_CHECKING, NamedTuple

from seedance_pipeline.ledger import states
from seedance_pipeline.ledger.states import AttemptState
from seedance_pipeline.storage import layout

if TYPE_CHECKING:
    from collections.abc import Container, Mapping

    from seedance_pipeline.ledger.records import AttemptRecord
    from seedance_pipeline.ledger.store import TaskStore

SKEW_S = 120.0  # how far another machine's clock may be from ours: its new attempts are listed all the same
FULL_EVERY_S = 300.0  # the whole day is listed at most this long after the previous whole listing


class Spent(NamedTuple):
    """What a budget needs of one attempt's record."""

    state: AttemptState
    simulated: bool
    run_id: str | None
    usd: float  # what it commits: its charge once delivered, its estimate while in flight, else 0

    @classmethod
    def of(cls, record: AttemptRecord) -> Spent:
        return cls(record.state, record.simulated, record.run_id, committed_usd(record))


def committed_usd(record: AttemptRecord) -> float:
    """What an attempt counts against a budget: its charge once delivered, its estimate while in flight."""
    if record.state in states.BILLED or record.state in states.IN_FLIGHT:
        return record.reported_cost_usd if record.reported_cost_usd is not None else record.estimated_cost_usd
    return 0.0


class DaySpent(NamedTuple):
    """One reading of a day: each attempt, and the sums a budget starts from."""

    spent: Mapping[str, Spent]  # attempt id -> what it commits
    totals: Mapping[tuple[str | None, bool], float]  # (run id, simulated) -> what that run's attempts commit
    runs: Mapping[str | None, tuple[str, ...]]  # run id -> its attempts' ids

    @classmethod
    def of(cls, spent: Mapping[str, Spent]) -> DaySpent:
        totals: dict[tuple[str | None, bool], float] = {}
        runs: dict[str | None, list[str]] = {}
        for attempt_id, entry in spent.items():
            totals[entry.run_id, entry.simulated] = totals.get((entry.run_id, entry.simulated), 0.0) + entry.usd
            runs.setdefault(entry.run_id, []).append(attempt_id)
        ids = MappingProxyType({run: tuple(a) for run, a in runs.items()})
        return cls(MappingProxyType(dict(spent)), MappingProxyType(totals), ids)

    def updated(self, changed: Mapping[str, Spent | None]) -> DaySpent:
        """This reading with ``changed`` (attempt id -> what it commits now; None: gone), at the cost of the changes
        and of a copy of the day's mapping, not of going through the day again."""
        if not changed:
            return self
        spent, totals = dict(self.spent), dict(self.totals)
        joined: dict[str | None, list[str]] = {}
        left: dict[str | None, set[str]] = {}
        for attempt_id, new in changed.items():
            old = spent.pop(attempt_id, None)
            if old is not None:
                totals[old.run_id, old.simulated] -= old.usd
            if new is not None:
                spent[attempt_id] = new
                totals[new.run_id, new.simulated] = totals.get((new.run_id, new.simulated), 0.0) + new.usd
            if old is not None and (new is None or new.run_id != old.run_id):
                left.setdefault(old.run_id, set()).add(attempt_id)
            if new is not None and (old is None or old.run_id != new.run_id):
                joined.setdefault(new.run_id, []).append(attempt_id)
        runs = dict(self.runs)
        for run in left.keys() | joined.keys():
            gone = left.get(run, set())
            runs[run] = tuple(a for a in runs.get(run, ()) if a not in gone) + tuple(joined.get(run, ()))
        return DaySpent(MappingProxyType(spent), MappingProxyType(totals), MappingProxyType(runs))


NOTHING = DaySpent.of({})


class _Day:
    def __init__(self) -> None:
        self.cache: dict[str, tuple[str, Spent]] = {}  # attempt id -> (its file's stamp, what it commits)
        self.full_at = -float("inf")  # time.time() when the last whole listing started
        self.read_at = -float("inf")  # time.time() when the last reading started
        self.started = -float("inf")  # time.monotonic() when the last reading started
        self.spent = NOTHING


class DayRecords:
    def __init__(self, store: TaskStore):
        self.store = store
        self._days: dict[str, _Day] = {}
        self._changed = threading.Condition()
        self._reading = False

    def read(self, day: str, since: float, mine: Container[str] = ()) -> DaySpent:
        """What ``day``'s attempts commit, from a reading that started at ``since`` (``time.monotonic()``) or later:
        call it with the time an intent's write had completed, and the intent is among them, as is every other
        process's intent written before it. The records of ``mine`` (the caller's own attempts, whose commitments it
        knows) are not read, though they are listed."""
        with self._changed:
            while True:
                known = self._days.setdefault(day, _Day())
                if known.started >= since:
                    return known.spent
                if not self._reading:
                    self._reading = True
                    break
                self._changed.wait()
        read = None
        try:
            read = self._fetch(day, known, mine)
        finally:
            with self._changed:
                if read is not None:
                    known.spent, (known.read_at, known.started) = read
                self._reading = False
                self._changed.notify_all()
        assert read is not None  # else _fetch raised, and so has this
        return read[0]

    def _fetch(self, day: str, known: _Day, mine: Container[str]) -> tuple[DaySpent, tuple[float, float]]:
        """Runs in one thread at a time (``read``). Nothing of ``known`` changes until every request has answered:
        a reading that fails leaves the day as the previous one left it."""
        started, now = time.monotonic(), time.time()
        cache, base, full_at, read_at = known.cache, known.spent, known.full_at, known.read_at
        if read_at == -float("inf"):  # this process's first reading of the day: from what a whole listing kept
            cache, full_at = self._stored(day)
            read_at = full_at
            base = DaySpent.of({aid: entry for aid, (_, entry) in cache.items()})
        full = now - full_at >= FULL_EVERY_S
        if full:
            stamps = self.store.day_stamps(day)
        else:
            stamps = self.store.day_stamps_between(day, read_at - SKEW_S, now + SKEW_S, mine)
        ids = {path: path.rsplit("/", 1)[-1].removesuffix(".json") for path in stamps}  # a file is its attempt's
        stale = [
            path for path, aid in ids.items() if aid not in mine and (aid not in cache or cache[aid][0] != stamps[path])
        ]
        read = self.store.read_records(stale)
        changed: dict[str, Spent | None] = {}
        for path, record in read.items():
            changed[ids[path]] = entry = Spent.of(record)
            cache[ids[path]] = (stamps[path], entry)
        if full:
            for gone in set(cache) - set(ids.values()):  # removed by hand: it no longer counts
                del cache[gone]
                changed[gone] = None
            full_at = now
            if read:
                self._keep(day, cache, now)
        known.cache, known.full_at = cache, full_at
        return base.updated(changed), (now, started)

    def _stored(self, day: str) -> tuple[dict[str, tuple[str, Spent]], float]:
        """The cache a whole listing of ``day`` last kept, and when that listing started (time.time(); -inf: none
        kept). Entries whose stamp no longer matches are read again."""
        kept = self.store.storage.read_index(layout.day_spend(day))
        listed_at, attempts = kept.get("listed_at"), kept.get("attempts")
        if not isinstance(listed_at, (int, float)) or not isinstance(attempts, dict):
            return {}, -float("inf")
        out = {}
        for aid, entry in attempts.items():
            try:
                stamp, state, simulated, run_id, usd = entry
                out[aid] = (str(stamp), Spent(AttemptState(state), bool(simulated), run_id, float(usd)))
            except (TypeError, ValueError):
                continue  # another version's shape: read from its record instead
        return out, float(listed_at)

    def _keep(self, day: str, cache: dict[str, tuple[str, Spent]], listed_at: float) -> None:
        attempts = {aid: [stamp, s.state.value, s.simulated, s.run_id, s.usd] for aid, (stamp, s) in cache.items()}
        data = json.dumps({"listed_at": listed_at, "attempts": attempts}, sort_keys=True).encode()
        with contextlib.suppress(OSError):  # a cache: the next process reads the records instead
            self.store.storage.write_bytes(self.store.storage.path(layout.day_spend(day)), data)
