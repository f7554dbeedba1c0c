"""Write-ahead task records when storage writes fail (found by the S3 fault campaign).

Each test fails chosen writes of a real local storage folder and drives the real journal, with a
real submit to the simulator on loopback where a provider task is involved.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from pydantic import PrivateAttr

from seedance_pipeline.clip.generate import generate_clip
from seedance_pipeline.clip.prepare import build_request, prepare
from seedance_pipeline.ledger.day_spend import DayRecords
from seedance_pipeline.ledger.journal import AttemptJournal
from seedance_pipeline.ledger.records import AttemptRecord
from seedance_pipeline.ledger.states import AttemptState
from seedance_pipeline.ledger.store import TaskStore
from seedance_pipeline.providers import get_adapter
from seedance_pipeline.providers.engine import ClientSettings, ProviderClient
from seedance_pipeline.storage.resource import SeedanceStorage
from seedance_pipeline_tests.conftest import FAST, png, put, requests_total


class FailingStorage(SeedanceStorage):
    """Local storage whose writes to paths containing ``fail_on`` raise, ``times`` times."""

    _fail_on: str = PrivateAttr(default="")
    _times: int = PrivateAttr(default=0)

    def fail(self, fragment: str, times: int = 1) -> None:
        self._fail_on, self._times = fragment, times

    def write_bytes(self, full_path: str, data: bytes) -> None:
        if self._times and self._fail_on in full_path:
            self._times -= 1
            raise OSError(f"injected write failure: {full_path.rsplit('/', 2)[-2]}")
        super().write_bytes(full_path, data)


@pytest.fixture
def flaky(tmp_path) -> FailingStorage:
    return FailingStorage(url=str(tmp_path / "storage"))


def _prepared(storage: SeedanceStorage, provider: str = "novita"):
    ref = put(storage, "images/cat.png", png())
    return prepare(get_adapter(provider), build_request(prompt="a cat", image=ref, duration=4, resolution="480p"))


def test_an_intent_whose_record_write_fails_leaves_no_open_attempt(flaky):
    store = TaskStore(flaky)
    prepared = _prepared(flaky)
    flaky.fail("/tasks/days/")
    with pytest.raises(OSError, match="injected"):
        store.create(prepared, image="cat", prompt="p", run_id=None, simulated=True)
    # Nothing was sent: nothing may be listed as needing a decision, and the fingerprint has no attempt.
    assert store.open_records() == []
    assert store.for_fingerprint(prepared.fingerprint) == []


def test_an_attempt_needing_attention_is_listed_even_if_its_record_write_fails(flaky):
    store = TaskStore(flaky)
    prepared = _prepared(flaky)
    record = store.create(prepared, image="cat", prompt="p", run_id=None, simulated=True)
    flaky.fail("/tasks/days/")
    with pytest.raises(OSError):
        store.save(record.moved(AttemptState.ACCEPTED, task_id="t-1"))
    assert [(r.attempt_id, r.state, r.task_id) for r in store.open_records()] == [
        (record.attempt_id, "accepted", "t-1")
    ]


@pytest.mark.parametrize("failing", ["/tasks/open/", "/tasks/days/"])
def test_a_failed_write_of_the_task_id_does_not_lose_the_task(flaky, sim, failing):
    """The submit succeeded and the 'accepted' write failed: the clip goes on with the task it has (one
    submit), and the outcome's record carries the task id."""
    store = TaskStore(flaky)
    prepared = _prepared(flaky)
    journal = AttemptJournal(store, image="cat", prompt="p", run_id=None, simulated=True)
    original_accepted = journal.accepted

    def accepted_with_failing_write(prepared, snapshot):
        flaky.fail(failing)  # the open copy's write, or the record's
        original_accepted(prepared, snapshot)

    journal.accepted = accepted_with_failing_write

    async def go():
        async with ProviderClient(
            get_adapter("novita"),
            "sk-records-0123456789",
            base_url=sim.provider_url("novita"),
            settings=ClientSettings(expected_latency_s=FAST, min_poll_interval_s=0.05),
        ) as client:
            return await generate_clip(client, prepared, flaky.fs, flaky.clip_path("p", "cat"), journal=journal)

    result = asyncio.run(go())
    assert requests_total(sim, "submit") == 1
    (record,) = store.for_fingerprint(prepared.fingerprint)
    assert (record.state, record.task_id) == ("succeeded", result.task_id)
    assert store.open_records() == []


def test_a_task_id_only_its_open_copy_kept_is_found_again(flaky):
    """The 'accepted' write reached the open copy but not the record, and the process died: whoever reads
    the attempt next (the next run's planning, a collect run) sees the task, not an intent to decide on."""
    store = TaskStore(flaky)
    prepared = _prepared(flaky)
    record = store.create(prepared, image="cat", prompt="p", run_id=None, simulated=True)
    flaky.fail("/tasks/days/")
    with pytest.raises(OSError):
        store.save(record.moved(AttemptState.ACCEPTED, task_id="t-7", poll_url="https://x/t-7"))
    (found,) = store.for_fingerprint(prepared.fingerprint)
    assert (found.state, found.task_id, found.poll_url) == ("accepted", "t-7", "https://x/t-7")
    assert (store.load(record.attempt_id).state, store.load(record.attempt_id).task_id) == ("accepted", "t-7")


def test_a_record_gone_between_listing_and_reading_is_not_read_as_another(storage, monkeypatch):
    """The daily budget's reading of the day (ledger/day_spend.py) takes each record as its own attempt's, also
    when one of the files listed can no longer be read (deleted by hand, or not yet visible on an object store)."""
    store = TaskStore(storage)
    prepared = _prepared(storage)
    records = [store.create(prepared, image=f"cat{i}", prompt="p", run_id=None, simulated=True) for i in range(3)]
    day = records[0].day
    gone = store._record_path(records[0].attempt_id)
    cat = storage.fs.cat
    monkeypatch.setattr(storage.fs, "cat", lambda paths, **kw: {p: b for p, b in cat(paths, **kw).items() if p != gone})
    read = DayRecords(store).read(day, time.monotonic())
    assert sorted(read.spent) == sorted(r.attempt_id for r in records[1:])
    assert read.totals == {(None, True): 2 * records[1].estimated_cost_usd}


def fail_open_copy_removal(storage: SeedanceStorage, monkeypatch, times: int = 1) -> list[str]:
    """The next ``times`` removals of an open copy from ``storage`` raise; returns the paths they were asked for."""
    rm, failed = storage.fs.rm, []

    def failing(path, *args, **kwargs):
        if len(failed) < times and "/tasks/open/" in str(path):
            failed.append(str(path))
            raise OSError("injected removal failure")
        return rm(path, *args, **kwargs)

    monkeypatch.setattr(storage.fs, "rm", failing)
    return failed


def _stale_copy(storage: SeedanceStorage, monkeypatch) -> tuple[TaskStore, AttemptRecord]:
    """An attempt whose task nobody owns (as the pending-tasks sensor finds it), collected, and whose open copy's
    removal failed after the 'succeeded' record was written: what an S3 burst left in the fault campaign."""
    store = TaskStore(storage)
    record = store.create(_prepared(storage), image="cat", prompt="p", run_id=None, simulated=True)
    accepted = store.save(record.moved(AttemptState.ACCEPTED, task_id="t-1", owner=None), claim=False)
    with monkeypatch.context() as patch:
        fail_open_copy_removal(storage, patch)
        with pytest.raises(OSError, match="injected removal"):
            store.save(accepted.moved(AttemptState.SUCCEEDED), claim=False)
    [copy] = store.open_records()
    assert (copy.state, store.load(record.attempt_id).state) == ("accepted", "succeeded")
    return store, copy


def test_an_open_copy_whose_record_closed_later_is_not_confirmed_and_is_removed(flaky, monkeypatch):
    store, copy = _stale_copy(flaky, monkeypatch)
    assert store.confirmed([copy]) == []
    assert store.open_records() == []


def test_an_open_copy_is_confirmed_as_the_newer_of_it_and_its_record(flaky):
    store = TaskStore(flaky)
    prepared = _prepared(flaky)
    never_written = store.create(prepared, image="cat", prompt="a", run_id=None, simulated=True)
    flaky.fs.rm(store._record_path(never_written.attempt_id))  # as a process killed inside create leaves it
    ahead = store.create(prepared, image="cat", prompt="b", run_id=None, simulated=True)
    flaky.fail("/tasks/days/")
    with pytest.raises(OSError):
        store.save(ahead.moved(AttemptState.ACCEPTED, task_id="t-2"))  # the copy knows the task, the record not
    behind = store.create(prepared, image="cat", prompt="c", run_id=None, simulated=True)
    later = store.save(behind.moved(AttemptState.ACCEPTED, task_id="t-3"))
    copies = {c.prompt: c for c in store.open_records()}
    got = {c.prompt: (c.state, c.task_id, c.updated_at) for c in store.confirmed(list(copies.values()))}
    assert got == {
        "a": ("intent", None, never_written.updated_at),
        "b": ("accepted", "t-2", copies["b"].updated_at),
        "c": ("accepted", "t-3", later.updated_at),
    }
    assert len(store.open_records()) == 3  # nothing removed


def test_the_sensor_neither_collects_nor_shows_a_stale_open_copy(flaky, monkeypatch, providers, instance):
    from seedance_pipeline.definitions import build_definitions
    from seedance_pipeline.defs.sensors.pending_tasks import pending_tasks_sensor
    from seedance_pipeline_tests.test_sensors import tick

    store, copy = _stale_copy(flaky, monkeypatch)
    result, _ = tick(pending_tasks_sensor, instance, flaky, build_definitions(flaky, providers))
    assert not result.run_requests and not result.asset_events
    assert store.open_records() == []
