"""Acceptance unknown, settled from the provider's task list (ledger/settle.py, production/settle.py): a task the
provider made is found and collected without a second submit; a submit that never arrived is proven absent and
made again once; anything uncertain stays with a person. The rules on their own, then WaveSpeed's list over real
HTTP against the simulator, then whole runs and the pending-tasks sensor."""

from __future__ import annotations

import asyncio

import pytest

from seedance_pipeline.cli.run_report import format_report
from seedance_pipeline.cli.runner import run_pipeline
from seedance_pipeline.clip.prepare import build_request, prepare
from seedance_pipeline.definitions import build_definitions
from seedance_pipeline.defs.sensors.pending_tasks import pending_tasks_sensor
from seedance_pipeline.ledger.records import AttemptRecord
from seedance_pipeline.ledger.settle import SKEW_S, TaskList, settle
from seedance_pipeline.ledger.states import AttemptState
from seedance_pipeline.ledger.store import TaskStore
from seedance_pipeline.providers import get_adapter
from seedance_pipeline.providers.base import WireReply
from seedance_pipeline.providers.states import ListedTask
from seedance_pipeline.providers.wavespeed import WaveSpeedAdapter
from seedance_pipeline.simulator.config import FaultRule
from seedance_pipeline.storage import layout
from seedance_pipeline.storage.resource import SeedanceStorage
from seedance_pipeline_tests.conftest import fast_config, png, put, requests_total
from seedance_pipeline_tests.test_sensors import execute, tick
from seedance_pipeline_tests.test_task_records import FailingStorage, fail_open_copy_removal

NOW = 1_800_000_000.0
REQUEST = {
    "prompt": "a calm lake",
    "duration": 4,
    "resolution": "480p",
    "aspect_ratio_sent": "16:9",
    "generate_audio": True,
    "camera_fixed": False,
    "seed": 7,
    "image_sent_sha256": "a" * 64,
}


def _record(n: int = 0, state=AttemptState.UNKNOWN, at: float = NOW - 600, **request) -> AttemptRecord:
    return AttemptRecord(
        attempt_id=f"2027-01-15T080000Z-{n:010d}",
        fingerprint=f"{n:064d}",
        image="lake",
        prompt="dawn",
        provider="wavespeed",
        state=state,
        request={**REQUEST, **request},
        estimated_cost_usd=0.1,
        created_at=at,
        updated_at=at + 5,
    )


def _task(task_id: str, at: float = NOW - 598, **request) -> ListedTask:
    return ListedTask(task_id, at, {**REQUEST, **request})


def _listing(*tasks: ListedTask, complete: bool = True, retention_s: float | None = 7 * 86400) -> TaskList:
    return TaskList("wavespeed", list(tasks), complete, visibility_s=60.0, retention_s=retention_s)


def _verdict(records, listing, known=frozenset()):
    return {v.record.attempt_id[-1:]: v for v in settle(records, listing, set(known), now=NOW)}


# -- the rules ------------------------------------------------------------------------------------------------


def test_the_one_task_with_the_attempts_exact_request_in_its_window_is_found():
    v = _verdict([_record(1)], _listing(_task("other-image", image_sent_sha256="b" * 64), _task("ours")))["1"]
    assert v.task is not None and v.task.task_id == "ours" and not v.absent


def test_a_task_the_ledger_already_holds_is_never_taken_for_another_attempt():
    v = _verdict([_record(1)], _listing(_task("held-by-a-retry")), known={"held-by-a-retry"})["1"]
    assert v.task is None and v.absent  # the only match is another attempt's: this one never arrived


def test_two_attempts_claiming_one_task_are_both_left_to_a_person():
    verdicts = _verdict([_record(1), _record(2)], _listing(_task("t")))
    assert not verdicts["1"].settled and not verdicts["2"].settled
    assert "task t matches another open attempt too" in verdicts["1"].reason


def test_two_exact_matches_for_one_attempt_settle_nothing():
    v = _verdict([_record(1)], _listing(_task("t1"), _task("t2", at=NOW - 590)))["1"]
    assert not v.settled and "t1" in v.reason and "t2" in v.reason


def test_a_task_outside_the_window_or_with_another_request_does_not_match():
    late = _task("late", at=NOW - 600 + 5 + SKEW_S + 1)  # after it was recorded unknown (plus the clock skew)
    early = _task("early", at=NOW - 600 - SKEW_S - 1)  # before its intent was written
    other = _task("other", duration=8)
    v = _verdict([_record(1)], _listing(late, early, other))["1"]
    assert v.absent  # none is the attempt's, and the list shows the whole window


def test_a_task_with_the_request_but_another_image_reference_stays_undecided():
    # A provider that rewrote the image reference would show the attempt's task like this: never guessed absent.
    v = _verdict([_record(1)], _listing(_task("rewritten?", image_sent_sha256="c" * 64)))["1"]
    assert not v.settled and "another image" in v.reason


def test_a_listed_task_without_the_image_only_counts_as_a_lookalike():
    bare = ListedTask("bare", NOW - 598, {k: v for k, v in REQUEST.items() if k != "image_sent_sha256"})
    v = _verdict([_record(1)], _listing(bare))["1"]
    assert not v.settled and "another image" in v.reason


def test_absence_needs_a_list_that_reaches_back_past_the_submit():
    newer = _task("newer", at=NOW - 30, prompt="something else")
    cut = _verdict([_record(1)], _listing(newer, complete=False))["1"]
    assert not cut.settled and "does not reach back" in cut.reason
    older = _task("older", at=NOW - 3600, prompt="something else")
    reaches = _verdict([_record(1)], _listing(newer, older, complete=False))["1"]
    assert reaches.absent


def test_absence_needs_the_providers_visibility_delay_to_have_passed():
    recent = _verdict([_record(1, at=NOW - 30)], _listing())["1"]
    assert not recent.settled and "too recent" in recent.reason
    assert _verdict([_record(1, at=NOW - 70)], _listing())["1"].absent


def test_an_intent_whose_process_died_is_looked_for_up_to_now():
    # Its POST may have left any time before the process died (a throttled submit waits): the window runs to now.
    intent = _record(1, state=AttemptState.INTENT, at=NOW - 3600)
    v = _verdict([intent], _listing(_task("sent-late", at=NOW - 100)))["1"]
    assert v.task is not None and v.task.task_id == "sent-late"
    assert not _verdict([intent], _listing())["1"].settled  # and absence waits for the visibility delay after now


def test_an_attempt_older_than_the_provider_keeps_tasks_is_never_called_absent():
    old = _record(1, at=NOW - 8 * 86400)
    v = _verdict([old], _listing(retention_s=7 * 86400))["1"]
    assert not v.settled and "keeps tasks" in v.reason


def test_fields_the_attempt_left_unset_are_not_compared():
    record = _record(1, seed=None)
    v = _verdict([record], _listing(_task("ours", seed=123456)))["1"]  # the provider drew the seed
    assert v.task is not None


# -- WaveSpeed's list over HTTP ---------------------------------------------------------------------------------


def test_wavespeeds_list_shows_a_submitted_task_with_the_request_the_attempt_recorded(storage, providers, sim):
    image = sim.put_asset("lake.png", png())
    prepared = prepare(
        get_adapter("wavespeed"),
        build_request(prompt="a calm lake", image=image, duration=5, resolution="480p", seed=11),
    )

    async def submit_then_list():
        async with providers.make_client("wavespeed") as client:
            snap = await client.submit(prepared.wire)
            return snap, await client.list_tasks()

    snap, (tasks, complete) = asyncio.run(submit_then_list())
    [listed] = tasks
    assert listed.task_id == snap.task_id and complete
    recorded = prepared.describe()
    assert listed.request == {k: recorded[k] for k in listed.request}
    assert set(listed.request) == {*REQUEST}  # every field matched on, the image by its digest
    assert requests_total(sim, "list") == 1


def test_the_simulated_list_shows_a_task_only_after_its_delay_and_one_page_at_most(providers, sim):
    from seedance_pipeline.simulator.config import ProviderSimConfig
    from seedance_pipeline.simulator.wavespeed import LIST_LIMIT

    config = fast_config()
    config.providers["wavespeed"] = ProviderSimConfig(latency_min_s=0.2, latency_max_s=0.2, list_delay_s=3600)
    sim.configure(config)
    prepared = prepare(get_adapter("wavespeed"), build_request(prompt="p", image=sim.put_asset("l.png", png())))

    async def submit_then_list(n: int):
        async with providers.make_client("wavespeed") as client:
            for _ in range(n):
                await client.submit(prepared.wire)
            return await client.list_tasks()

    assert asyncio.run(submit_then_list(1)) == ([], True)  # made, not listed yet
    config.providers["wavespeed"] = ProviderSimConfig(latency_min_s=0.2, latency_max_s=0.2)
    sim.configure(config)
    tasks, complete = asyncio.run(submit_then_list(LIST_LIMIT))
    assert len(tasks) == LIST_LIMIT and not complete  # LIST_LIMIT + 1 exist: a full page, taken as cut
    newest = sim.sim.provider_tasks("wavespeed")[0]
    assert tasks[0].task_id == newest.id


def test_predictions_of_other_models_and_malformed_items_are_left_out():
    body = {
        "code": 200,
        "data": {
            "items": [
                {"id": "v", "model": "wavespeed-ai/some-other-model", "created_at": "2027-01-15T08:00:00Z"},
                {"model": "bytedance/seedance-v1.5-pro/image-to-video"},
                "not an object",
                {"id": "ok", "model": "bytedance/seedance-v1.5-pro/image-to-video", "created_at": "bad date"},
            ]
        },
    }
    tasks, complete = WaveSpeedAdapter().parse_list(WireReply(200, body))
    assert [(t.task_id, t.created_at) for t in tasks] == [("ok", None)] and complete


def test_a_full_page_is_taken_as_cut():
    items = [{"id": str(n), "created_at": "2027-01-15T08:00:00Z"} for n in range(WaveSpeedAdapter.list_page)]
    tasks, complete = WaveSpeedAdapter().parse_list(WireReply(200, {"code": 200, "data": items}))
    assert len(tasks) == WaveSpeedAdapter.list_page and not complete


# -- whole runs -------------------------------------------------------------------------------------------------

PROMPT = "text: a calm lake\nprovider: wavespeed\nduration: 5\nresolution: 480p\nseed: 3\n"


def _unknown_after(sim, storage, instance, providers, kind: str) -> AttemptRecord:
    put(storage, "images/lake.png", png())
    put(storage, "prompts/dawn.yaml", PROMPT)
    sim.configure(fast_config(faults=[FaultRule(provider="wavespeed", endpoint="submit", kind=kind, times=1)]))
    first = run_pipeline(instance, storage, providers)
    assert first.clips == [] and len(first.failures) == 1
    [record] = TaskStore(storage).open_records()
    assert record.state is AttemptState.UNKNOWN
    return record


def test_a_task_whose_submit_answer_was_lost_is_found_and_collected_not_paid_twice(storage, providers, sim, instance):
    record = _unknown_after(sim, storage, instance, providers, "drop_after")  # created, answer lost
    assert requests_total(sim, "submit") == 1

    second = run_pipeline(instance, storage, providers)
    assert second.ok, second.failures
    assert requests_total(sim, "submit") == 1  # never submitted again
    [task] = sim.sim.provider_tasks("wavespeed")
    settled = TaskStore(storage).load(record.attempt_id)
    assert settled.state is AttemptState.SUCCEEDED and settled.task_id == task.id
    assert f"found in wavespeed's task list as task {task.id}" in (settled.settled or "")
    assert storage.exists(storage.clip_path("dawn", "lake"))
    assert any(
        line.startswith(f"settled lake|dawn on wavespeed (attempt {record.attempt_id})") for line in second.settled
    )
    assert "found in wavespeed's task list" in format_report(second)


def test_a_submit_that_never_arrived_is_proven_absent_and_made_once(storage, providers, sim, instance, monkeypatch):
    # The simulator lists a task as soon as it exists (list_delay_s 0): the adapter is told the same.
    monkeypatch.setattr(WaveSpeedAdapter, "list_visibility_s", 0.0)
    record = _unknown_after(sim, storage, instance, providers, "drop_before")  # never reached the provider
    assert sim.sim.provider_tasks("wavespeed") == []

    second = run_pipeline(instance, storage, providers)
    assert second.ok, second.failures
    assert requests_total(sim, "submit") == 2  # the lost one, and the one made now
    settled = TaskStore(storage).load(record.attempt_id)
    assert settled.state is AttemptState.REJECTED and "never created" in (settled.settled or "")
    assert [c.outcome for c in second.clips] == ["generated"]
    assert len(sim.sim.provider_tasks("wavespeed")) == 1


def test_an_unknown_still_too_recent_to_prove_absent_stays_with_a_person(storage, providers, sim, instance):
    record = _unknown_after(sim, storage, instance, providers, "drop_before")
    second = run_pipeline(instance, storage, providers)  # well inside WaveSpeed's 60 s visibility
    assert requests_total(sim, "submit") == 1
    assert TaskStore(storage).load(record.attempt_id).state is AttemptState.UNKNOWN
    assert any("still unknown" in line and "too recent" in line for line in second.settled), second.settled


def test_providers_without_a_list_leave_the_decision_to_a_person(storage, providers, sim, instance):
    put(storage, "images/lake.png", png())
    put(storage, "prompts/dawn.yaml", PROMPT.replace("wavespeed", "novita"))
    sim.configure(fast_config(faults=[FaultRule(provider="novita", endpoint="submit", kind="drop_after", times=1)]))
    run_pipeline(instance, storage, providers)
    second = run_pipeline(instance, storage, providers)
    [record] = TaskStore(storage).open_records()
    assert record.state is AttemptState.UNKNOWN and second.settled == []
    assert requests_total(sim, "submit") == 1 and requests_total(sim, "list") == 0


def _never_written_intent(sim, storage, instance, providers) -> tuple[TaskStore, AttemptRecord]:
    """An attempt at novita (no task list) as a process killed inside TaskStore.create leaves it: the intent's
    open copy, and no record."""
    put(storage, "images/lake.png", png())
    put(storage, "prompts/dawn.yaml", PROMPT.replace("wavespeed", "novita"))
    sim.configure(fast_config(faults=[FaultRule(provider="novita", endpoint="submit", kind="drop_before", times=1)]))
    run_pipeline(instance, storage, providers)
    store = TaskStore(storage)
    [record] = store.open_records()
    intent = record.model_copy(update={"state": AttemptState.INTENT, "owner": None, "run_id": None})
    storage.write_bytes(storage.path(layout.task_open(record.attempt_id)), intent.model_dump_json().encode())
    storage.fs.rm(storage.path(layout.task_record(record.attempt_id)))
    assert store.load(record.attempt_id).state is AttemptState.INTENT and not store.written(record.attempt_id)
    return store, record


def test_an_intent_whose_record_was_never_written_was_never_sent_and_is_made_once(storage, providers, sim, instance):
    store, record = _never_written_intent(sim, storage, instance, providers)
    submits = requests_total(sim, "submit")

    second = run_pipeline(instance, storage, providers)
    assert second.ok, second.failures
    settled = store.load(record.attempt_id)
    assert settled.state is AttemptState.REJECTED and "never written" in (settled.settled or "")
    assert any(line.startswith(f"settled lake|dawn on novita (attempt {record.attempt_id})") for line in second.settled)
    assert [c.outcome for c in second.clips] == ["generated"]
    assert requests_total(sim, "submit") == submits + 1 and len(sim.sim.provider_tasks("novita")) == 1
    assert store.open_records() == []


def test_the_pending_tasks_sensor_settles_and_collects_in_one_tick(storage, providers, sim, instance):
    # Recorded unknown by this (live) process, which has given up on it: the found task is nobody's to wait for.
    record = _unknown_after(sim, storage, instance, providers, "drop_after")
    defs = build_definitions(storage, providers)
    result, _ = tick(pending_tasks_sensor, instance, storage, defs)
    [observation] = result.asset_events
    assert observation.partition == "lake|dawn" and "found in wavespeed" in observation.metadata["settled"].value
    [request] = result.run_requests
    assert request.run_config["ops"]["clips"]["config"]["collect"] == [record.attempt_id]
    assert execute(defs, instance, request).success
    assert requests_total(sim, "submit") == 1
    assert TaskStore(storage).load(record.attempt_id).state is AttemptState.SUCCEEDED


def test_a_verdict_that_cannot_be_recorded_is_reported_and_settled_by_the_next_run(tmp_path, providers, sim, instance):
    # The S3 campaign's failure: a write of a verdict failed and the whole `run` (or the sensor's tick) raised.
    flaky = FailingStorage(url=str(tmp_path / "storage"))
    record = _unknown_after(sim, flaky, instance, providers, "drop_after")  # created, answer lost
    flaky.fail("/tasks/open/")  # the found verdict is open (accepted): its open copy is written first
    second = run_pipeline(instance, flaky, providers)
    assert any(
        f"(attempt {record.attempt_id}): writing its verdict failed (storage error: OSError: injected" in line
        for line in second.settled
    ), second.settled
    assert TaskStore(flaky).load(record.attempt_id).state is AttemptState.UNKNOWN
    assert second.clips == [] and requests_total(sim, "submit") == 1

    third = run_pipeline(instance, flaky, providers)
    assert third.ok, third.failures
    assert TaskStore(flaky).load(record.attempt_id).state is AttemptState.SUCCEEDED
    assert flaky.exists(flaky.clip_path("dawn", "lake")) and requests_total(sim, "submit") == 1


def test_a_verdict_whose_open_copy_outlives_it_is_made_once_and_the_copy_goes(
    storage, providers, sim, instance, monkeypatch
):
    # The CI run's case: the verdict's record was written and the removal of its open copy failed (an S3 burst).
    store, record = _never_written_intent(sim, storage, instance, providers)
    submits = requests_total(sim, "submit")
    failures = fail_open_copy_removal(storage, monkeypatch)
    second = run_pipeline(instance, storage, providers)
    assert failures and any("writing its verdict failed" in line for line in second.settled), second.settled
    assert [c.outcome for c in second.clips] == ["generated"]  # the record says never sent: made now, once
    assert [r.attempt_id for r in store.open_records()] == [record.attempt_id]  # the copy outlived its record

    third = run_pipeline(instance, storage, providers)
    assert third.ok and third.settled == [] and third.clips == [], (third.settled, third.failures)
    assert store.open_records() == [] and store.load(record.attempt_id).state is AttemptState.REJECTED
    assert requests_total(sim, "submit") == submits + 1 and len(sim.sim.provider_tasks("novita")) == 1


def test_the_sensor_reports_a_verdict_it_cannot_record_and_requests_nothing_for_it(
    storage, providers, sim, instance, monkeypatch
):
    record = _unknown_after(sim, storage, instance, providers, "drop_after")
    # Dagster builds the sensor's resources again from their config, so the failing write is the class's here.
    write_bytes = SeedanceStorage.write_bytes

    def failing(self, full_path: str, data: bytes) -> None:
        if "/tasks/open/" in full_path:
            raise OSError("injected write failure")
        write_bytes(self, full_path, data)

    monkeypatch.setattr(SeedanceStorage, "write_bytes", failing)
    result, _ = tick(pending_tasks_sensor, instance, storage, build_definitions(storage, providers))
    # The tick ends (it raised before): no verdict shown, nothing to collect; the attempt is still a person's.
    assert not result.run_requests
    assert [e.metadata["attempt_id"].value for e in result.asset_events if "settled" in e.metadata] == []
    assert [e.metadata["attempt_id"].value for e in result.asset_events] == [record.attempt_id]
    assert TaskStore(storage).load(record.attempt_id).state is AttemptState.UNKNOWN


@pytest.mark.parametrize("status", [500, 401])
def test_a_list_that_cannot_be_read_changes_nothing(storage, providers, sim, instance, status):
    providers = providers.model_copy(update={"client_settings": {"backoff_base_s": 0.01, "backoff_max_s": 0.05}})
    record = _unknown_after(sim, storage, instance, providers, "drop_after")
    faults = [FaultRule(provider="wavespeed", endpoint="list", kind="http_status", status=status)]
    sim.configure(fast_config(faults=faults))
    second = run_pipeline(instance, storage, providers)
    assert TaskStore(storage).load(record.attempt_id).state is AttemptState.UNKNOWN
    assert any("task list could not be read" in line for line in second.settled), second.settled
    assert requests_total(sim, "submit") == 1


def test_records_since_reads_the_attempts_started_in_the_span_across_days(storage):
    from datetime import datetime

    from seedance_pipeline.storage import layout

    def at(stamp: str) -> float:
        return datetime.fromisoformat(stamp).timestamp()

    ids = ["2027-01-14T235900Z-0000000001", "2027-01-15T000100Z-0000000002", "2027-01-15T080000Z-0000000003"]
    for attempt_id in ids:
        record = _record().model_copy(update={"attempt_id": attempt_id})
        storage.write_bytes(storage.path(layout.task_record(attempt_id)), record.model_dump_json().encode())
    store = TaskStore(storage)
    span = store.records_since(at("2027-01-14T23:58:00+00:00"), at("2027-01-15T00:02:00+00:00"))
    assert [r.attempt_id for r in span] == ids[:2]
    assert [
        r.attempt_id for r in store.records_since(at("2027-01-15T00:01:00+00:00"), at("2027-01-16T00:00:00+00:00"))
    ] == ids[1:]
    assert store.records_since(at("2027-01-16T00:00:00+00:00"), at("2027-01-17T00:00:00+00:00")) == []
