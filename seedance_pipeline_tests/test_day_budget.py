"""The daily budget at day scale: what each check reads (ledger/day_spend.py) and what it decides (ledger/budget.py),
on a local folder and on S3 (moto's server on loopback).

The clock the readings pick their hours by is the test's (``clock``); attempt ids are made for chosen times, as
another process would have made them then.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import pytest

from seedance_pipeline.clip.prepare import build_request, prepare
from seedance_pipeline.core.errors import OverBudget
from seedance_pipeline.ledger import day_spend
from seedance_pipeline.ledger.budget import SpendGuard
from seedance_pipeline.ledger.day_spend import DayRecords
from seedance_pipeline.ledger.journal import AttemptJournal
from seedance_pipeline.ledger.records import AttemptRecord, new_attempt_id
from seedance_pipeline.ledger.states import AttemptState
from seedance_pipeline.ledger.store import TaskStore
from seedance_pipeline.providers import get_adapter
from seedance_pipeline.storage.resource import SeedanceStorage, file_stamp
from seedance_pipeline_tests.conftest import png, put

DAY = "2026-12-07"
NOON = datetime(2026, 12, 7, 12, 0, tzinfo=UTC).timestamp()


@pytest.fixture(params=["local", "s3"])
def any_storage(request, tmp_path) -> SeedanceStorage:
    if request.param == "local":
        return SeedanceStorage(url=str(tmp_path / "storage"))
    return request.getfixturevalue("s3_storage")


class Clock:
    def __init__(self, now: float):
        self.now = now

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return time.monotonic()


@pytest.fixture
def clock(monkeypatch) -> Clock:
    fake = Clock(NOON)
    monkeypatch.setattr(day_spend, "time", fake)
    return fake


def _prepared(tmp_path):
    """A request whose image is a local file (the store under test may be S3: only its records matter here)."""
    ref = put(SeedanceStorage(url=str(tmp_path / "images")), "images/cat.png", png())
    return prepare(get_adapter("novita"), build_request(prompt="a cat", image=ref, duration=4, resolution="480p"))


def _record(at: float, usd: float = 1.0, state: AttemptState = AttemptState.ACCEPTED, **fields) -> AttemptRecord:
    base = dict(fingerprint="f" * 64, image="cat", prompt="p", provider="novita", simulated=True, request={})
    return AttemptRecord(
        attempt_id=new_attempt_id(at),
        state=state,
        estimated_cost_usd=usd,
        created_at=at,
        updated_at=at,
        **{**base, **fields},
    )


def _write(store: TaskStore, record: AttemptRecord) -> AttemptRecord:
    store.storage.write_bytes(store._record_path(record.attempt_id), record.model_dump_json().encode())
    return record


class Counting:
    """Counts the files a store lists and reads."""

    def __init__(self, store: TaskStore, monkeypatch):
        self.listed, self.read, self.whole = 0, 0, 0
        for name in ("day_stamps", "day_stamps_between", "read_records"):
            original = getattr(store, name)

            def counted(*args, _original=original, _name=name):
                out = _original(*args)
                if _name == "read_records":
                    self.read += len(out)
                else:
                    self.listed += len(out)
                    self.whole += _name == "day_stamps"
                return out

            monkeypatch.setattr(store, name, counted)


def test_stamps_lists_the_files_of_a_folder_whose_names_start_with_a_prefix(any_storage):
    storage = any_storage
    folder = storage.path("tasks", "days", DAY)
    for name in ("2026-12-07T0601Z-a.json", "2026-12-07T0659Z-b.json", "2026-12-07T0700Z-c.json", "x.json"):
        storage.write_bytes(f"{folder}/{name}", name.encode())
    found = storage.stamps(folder, ["2026-12-07T06", "2026-12-07T08"])
    assert sorted(p.rsplit("/", 1)[-1] for p in found) == ["2026-12-07T0601Z-a.json", "2026-12-07T0659Z-b.json"]
    for path, stamp in found.items():
        assert stamp == file_stamp(storage.fs.info(path))
    assert storage.stamps(storage.path("tasks", "days", "2026-12-08"), ["2026-12-08T00"]) == {}
    skipped = storage.stamps(folder, ["2026-12-07T06"], skip=lambda name: name.endswith("-b.json"))
    assert [p.rsplit("/", 1)[-1] for p in skipped] == ["2026-12-07T0601Z-a.json"]


def test_a_reading_lists_the_recent_hours_only_and_the_whole_day_every_few_minutes(any_storage, clock, monkeypatch):
    store = TaskStore(any_storage)
    early = [_write(store, _record(NOON - 6 * 3600 + i)) for i in range(30)]  # 06:00, long before the readings
    days, count = DayRecords(store), Counting(store, monkeypatch)
    assert set(days.read(DAY, time.monotonic()).spent) == {r.attempt_id for r in early}
    assert (count.whole, count.read) == (1, 30)  # the first reading lists the whole day

    clock.now += 30
    fresh = _write(store, _record(clock.now))
    count.listed = count.read = 0
    seen = days.read(DAY, time.monotonic()).spent
    assert set(seen) == {r.attempt_id for r in [*early, fresh]}
    assert (count.whole, count.listed, count.read) == (1, 1, 1)  # the 12:00 hour's one file, not the day's 31

    # An early attempt delivered at a price of its own: counted at it once the whole day is listed again.
    _write(store, early[0].moved(AttemptState.SUCCEEDED, reported_cost_usd=3.0))
    clock.now += 30
    assert days.read(DAY, time.monotonic()).spent[early[0].attempt_id].usd == 1.0
    clock.now += day_spend.FULL_EVERY_S
    assert days.read(DAY, time.monotonic()).spent[early[0].attempt_id].usd == 3.0
    assert count.whole == 2


def test_the_next_process_reads_what_the_last_whole_listing_kept_and_the_records_changed_since(
    any_storage, clock, monkeypatch
):
    store = TaskStore(any_storage)
    early = [_write(store, _record(NOON - 3600 + i)) for i in range(30)]
    DayRecords(store).read(DAY, time.monotonic())  # one process's whole listing: it keeps what it read
    _write(store, early[3].moved(AttemptState.FAILED))  # then, in another process: one failed free, one new
    new = _write(store, _record(NOON - 60, usd=2.0))
    count = Counting(store, monkeypatch)
    clock.now += 10
    days = DayRecords(store)  # the next process: the kept listing and the minutes since, not the whole day
    spent = days.read(DAY, time.monotonic()).spent
    assert (count.whole, count.listed, count.read) == (0, 1, 1)
    assert spent[new.attempt_id].usd == 2.0 and spent[early[3].attempt_id].usd == 1.0  # as last read...
    clock.now += day_spend.FULL_EVERY_S
    spent = days.read(DAY, time.monotonic()).spent
    assert spent[early[3].attempt_id].usd == 0.0 and count.whole == 1  # ...until the day is listed whole again
    assert sum(s.usd for s in spent.values()) == 29 + 2.0
    # The kept file is a cache: unreadable, every record is read instead.
    any_storage.write_bytes(any_storage.path("state", "spend", f"{DAY}.json"), b"{not json")
    count.read = 0
    assert sum(s.usd for s in DayRecords(store).read(DAY, time.monotonic()).spent.values()) == 29 + 2.0
    assert count.read == 31


def test_an_attempt_from_a_clock_minutes_behind_is_seen_by_the_next_reading(any_storage, clock):
    store = TaskStore(any_storage)
    days = DayRecords(store)
    days.read(DAY, time.monotonic())
    clock.now += 5  # the other machine's clock is 7 minutes behind ours, and the hour just turned there
    behind = _write(store, _record(NOON - 7 * 60))
    assert behind.attempt_id.startswith("2026-12-07T1153")
    assert behind.attempt_id in days.read(DAY, time.monotonic()).spent


def test_one_reading_serves_every_intent_written_before_it_started(tmp_path, monkeypatch):
    store = TaskStore(SeedanceStorage(url=str(tmp_path / "storage")))
    days, today = DayRecords(store), new_attempt_id()[:10]
    days.read(today, time.monotonic())
    readings: list[float] = []
    release = threading.Event()
    listed = store.day_stamps_between

    def held(*args):  # the first reading holds until every other intent waits for one
        readings.append(time.monotonic())
        if len(readings) == 1:
            release.wait(10)
        return listed(*args)

    monkeypatch.setattr(store, "day_stamps_between", held)
    first = threading.Thread(target=days.read, args=(today, time.monotonic()))
    first.start()
    while not readings:
        time.sleep(0.001)
    written = [_write(store, _record(time.time(), usd=i)) for i in range(1, 9)]
    since = time.monotonic()
    seen: list[set[str]] = []
    threads = [threading.Thread(target=lambda: seen.append(set(days.read(today, since).spent))) for _ in written]
    for t in threads:
        t.start()
    release.set()
    for t in [first, *threads]:
        t.join(10)
    assert len(readings) == 2  # the held one (before the intents), then one for all eight
    assert all({r.attempt_id for r in written} <= s for s in seen)


def _journals(store: TaskStore, guard: SpendGuard, run_id: str, n: int) -> list[AttemptJournal]:
    return [
        AttemptJournal(store, image=f"img{i}", prompt="p", run_id=run_id, simulated=True, guard=guard) for i in range(n)
    ]


def test_a_run_s_intents_written_side_by_side_admit_exactly_what_the_day_allows(any_storage, tmp_path, monkeypatch):
    store = TaskStore(any_storage)
    prepared = _prepared(tmp_path)
    each = prepared.estimate.usd
    _write(store, _record(time.time(), usd=2 * each, run_id="earlier"))  # another run's clip today, in flight
    guard = SpendGuard(store, per_run_usd=None, per_day_usd=7.5 * each, run_id="run-1")
    admitted, stopped = [], []
    # Every intent durable before any is decided: each check's reading holds all twelve of the run's intents.
    written = threading.Barrier(12)
    create = store.create

    def create_then_wait(*args, **kwargs):
        record = create(*args, **kwargs)
        written.wait(30)
        return record

    monkeypatch.setattr(store, "create", create_then_wait)

    def intent(journal: AttemptJournal) -> None:
        try:
            journal.intent(prepared)
            admitted.append(journal.record)
        except OverBudget as exc:
            stopped.append(str(exc))

    threads = [threading.Thread(target=intent, args=(j,)) for j in _journals(store, guard, "run-1", 12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert (len(admitted), len(stopped)) == (5, 7)  # 2 + 5 = 7 clips' worth of 7.5
    assert all("over the daily budget" in s and "nothing was sent" in s for s in stopped)


def test_a_run_s_intents_are_admitted_in_the_order_they_are_decided(any_storage, tmp_path):
    """First come, first served: an intent of the run still waiting for its decision does not stop one decided
    before it (it is decided after, and sees it)."""
    store = TaskStore(any_storage)
    prepared = _prepared(tmp_path)
    guard = SpendGuard(store, per_run_usd=None, per_day_usd=2.5 * prepared.estimate.usd, run_id="run-1")
    records = [store.create(prepared, image=f"img{i}", prompt="p", run_id="run-1", simulated=True) for i in range(4)]
    outcomes = []
    for record in records:
        try:
            guard.admit(record)
            outcomes.append("admitted")
        except OverBudget:
            outcomes.append("stopped")
    assert outcomes == ["admitted", "admitted", "stopped", "stopped"]


def test_two_runs_racing_for_the_last_clip_never_both_spend(any_storage, tmp_path):
    store = TaskStore(any_storage)
    prepared = _prepared(tmp_path)
    budget = 1.5 * prepared.estimate.usd
    a = SpendGuard(store, per_run_usd=None, per_day_usd=budget, run_id="run-a")
    b = SpendGuard(store, per_run_usd=None, per_day_usd=budget, run_id="run-b")
    (ja,), (jb,) = _journals(store, a, "run-a", 1), _journals(store, b, "run-b", 1)
    # Both intents durable before either check: each sees the other's, and both stop.
    ra = store.create(prepared, image="img0", prompt="p", run_id="run-a", simulated=True)
    rb = store.create(prepared, image="img0", prompt="p", run_id="run-b", simulated=True)
    for guard, record in ((a, ra), (b, rb)):
        with pytest.raises(OverBudget):
            guard.admit(record)
    # Stopped and released, they count nothing: a run's check after them passes, the next one's stops.
    for record in (ra, rb):
        store.save(record.moved(AttemptState.BLOCKED))
    ja.intent(prepared)
    with pytest.raises(OverBudget):
        jb.intent(prepared)


def test_a_stopped_intent_of_the_run_counts_nothing_though_its_record_still_says_intent(any_storage, tmp_path):
    store = TaskStore(any_storage)
    prepared = _prepared(tmp_path)
    # No run id: the guard cannot tell its intents from another run's; only what it decided tells them apart.
    guard = SpendGuard(store, per_run_usd=None, per_day_usd=1.5 * prepared.estimate.usd)
    first, second, third = _journals(store, guard, "run-1", 3)
    first.intent(prepared)
    with pytest.raises(OverBudget):
        second.intent(prepared)  # its record is written BLOCKED only later, by the journal's outcome
    assert store.load(second.record.attempt_id if second.record else "").state is AttemptState.INTENT
    guard.release(first.record)  # the first never reached the provider after all
    store.save(first.record.moved(AttemptState.REJECTED))
    third.intent(prepared)  # counts neither the released one nor the stopped one still saying intent


def test_a_day_that_cannot_be_read_stops_the_clip_as_blocked_with_nothing_sent(any_storage, tmp_path, monkeypatch):
    """Not "acceptance unknown": the POST never left, so no person has to decide anything."""
    store = TaskStore(any_storage)
    prepared = _prepared(tmp_path)
    guard = SpendGuard(store, per_run_usd=None, per_day_usd=100.0, run_id="run-1")
    (journal,) = _journals(store, guard, "run-1", 1)

    def unreadable(*args):
        raise OSError("injected: listing refused")

    monkeypatch.setattr(store, "day_stamps", unreadable)
    with pytest.raises(OverBudget, match="could not be checked.*injected.*nothing was sent") as stopped:
        journal.intent(prepared)
    journal.finished(prepared, None, stopped.value)
    assert store.load(journal.record.attempt_id).state is AttemptState.BLOCKED
    assert store.open_records() == []


def test_a_run_never_reads_its_own_records_back_and_counts_them_as_they_settled(any_storage, tmp_path, monkeypatch):
    """Its own attempts are counted as its guard decided and settled them: a reading reads only the others'."""
    store = TaskStore(any_storage)
    prepared = _prepared(tmp_path)
    each = prepared.estimate.usd
    _write(store, _record(time.time(), usd=each, run_id="earlier"))
    guard = SpendGuard(store, per_run_usd=None, per_day_usd=3.5 * each, run_id="run-1")
    count = Counting(store, monkeypatch)
    first, second, third, fourth = _journals(store, guard, "run-1", 4)
    first.intent(prepared)
    second.intent(prepared)
    with pytest.raises(OverBudget):
        third.intent(prepared)  # 1 earlier + 2 in flight + this one > 3.5
    third.finished(prepared, None, OverBudget("stopped"))
    # The first one's task failed, free: once its journal has written that, the day counts it at nothing.
    from seedance_pipeline.core.errors import TaskFailed

    first.record = store.save(first.record.moved(AttemptState.ACCEPTED, task_id="t-1"))
    first.finished(prepared, None, TaskFailed("novita", "content rejected", task_id="t-1", state="failed"))
    assert store.load(first.record.attempt_id).state is AttemptState.FAILED
    fourth.intent(prepared)  # 1 earlier + the second + this one
    assert count.read == 1  # the earlier run's record; none of this run's four


def test_a_per_run_budget_takes_back_what_a_refused_or_failed_free_clip_reserved_and_counts_charges(
    any_storage, tmp_path
):
    """The per-run limit counts what the run's attempts commit now: a refusal's record commits nothing, so what it
    was admitted at is taken from the guard, not from the record."""
    from seedance_pipeline.core.errors import SubmitRejected, TaskFailed

    store = TaskStore(any_storage)
    prepared = _prepared(tmp_path)
    each = prepared.estimate.usd
    guard = SpendGuard(store, per_run_usd=2.5 * each, per_day_usd=None, run_id="run-1")
    refused, failed, stopped, fourth, fifth, sixth = _journals(store, guard, "run-1", 6)
    refused.intent(prepared)
    failed.intent(prepared)
    with pytest.raises(OverBudget, match="per-run budget") as over:
        stopped.intent(prepared)  # 2 in flight + this one > 2.5
    stopped.finished(prepared, None, over.value)
    refused.finished(prepared, None, SubmitRejected("novita", "bad request", status_code=400))
    assert store.load(refused.record.attempt_id).state is AttemptState.REJECTED
    fourth.intent(prepared)  # the failed one (in flight) + this one: the refused one holds nothing
    failed.record = store.save(failed.record.moved(AttemptState.ACCEPTED, task_id="t-1"))
    failed.finished(prepared, None, TaskFailed("novita", "content rejected", task_id="t-1", state="failed"))
    fifth.intent(prepared)  # the fourth + this one: a task that failed free holds nothing either
    assert guard.run_usd == pytest.approx(2 * each)
    fourth.record = store.save(fourth.record.moved(AttemptState.ACCEPTED, task_id="t-4"))
    guard.settled(store.save(fourth.record.moved(AttemptState.SUCCEEDED, reported_cost_usd=1.5 * each)))
    with pytest.raises(OverBudget, match="per-run budget"):
        sixth.intent(prepared)  # charged 1.5 (not the estimate) + the fifth in flight + this one > 2.5
    assert guard.run_usd == pytest.approx(2.5 * each)


def test_a_reading_lists_but_neither_stats_nor_reads_the_caller_s_own_records(tmp_path, clock, monkeypatch):
    """A big run's own attempts fill the recent blocks a reading lists: it knows what they commit (M23)."""
    from seedance_pipeline.storage import resource

    store = TaskStore(SeedanceStorage(url=str(tmp_path / "storage")))
    days = DayRecords(store)
    days.read(DAY, time.monotonic())  # the whole (empty) day, so the next reading lists the recent blocks only
    clock.now += 30
    mine = {_write(store, _record(clock.now - i, run_id="run-1")).attempt_id for i in range(50)}
    other = _write(store, _record(clock.now - 1, run_id="other"))
    stats: list[str] = []
    original = resource._local_info
    monkeypatch.setattr(resource, "_local_info", lambda path: stats.append(path) or original(path))
    count = Counting(store, monkeypatch)
    assert set(days.read(DAY, time.monotonic(), mine).spent) == {other.attempt_id}
    assert [path.rsplit("/", 1)[-1] for path in stats] == [f"{other.attempt_id}.json"]
    assert (count.whole, count.read) == (0, 1)


def test_what_a_run_admitted_yesterday_does_not_count_against_today(any_storage, clock):
    """A run across midnight: the guard's sums of what it admitted are kept per UTC day."""
    store = TaskStore(any_storage)
    guard = SpendGuard(store, per_run_usd=None, per_day_usd=2.5, run_id="run-1")
    midnight = datetime(2026, 12, 8, tzinfo=UTC).timestamp()
    for at in (midnight - 20, midnight - 10):
        guard.admit(_write(store, _record(at, state=AttemptState.INTENT, run_id="run-1")))
    with pytest.raises(OverBudget, match="2026-12-07"):
        guard.admit(_write(store, _record(midnight - 5, state=AttemptState.INTENT, run_id="run-1")))
    clock.now = midnight + 5
    for at in (midnight + 1, midnight + 2):
        guard.admit(_write(store, _record(at, state=AttemptState.INTENT, run_id="run-1")))
    with pytest.raises(OverBudget, match=r"2026-12-08 \(UTC\): \$3\.0000"):
        guard.admit(_write(store, _record(midnight + 3, state=AttemptState.INTENT, run_id="run-1")))
