"""Both sensors through build_sensor_context, executing the runs they request in-process."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import uuid

import dagster as dg

from seedance_pipeline.clip.prepare import build_request, prepare
from seedance_pipeline.definitions import build_definitions
from seedance_pipeline.defs.sensors.pending_tasks import pending_tasks_sensor
from seedance_pipeline.defs.sensors.storage import storage_sensor
from seedance_pipeline.ledger.states import AttemptState
from seedance_pipeline.ledger.store import TaskStore
from seedance_pipeline.lineage.partitions import IMAGES, PROMPTS
from seedance_pipeline.providers import get_adapter
from seedance_pipeline_tests.conftest import png, put, requests_total

PROMPT = "text: a calm lake at dawn\nprovider: novita\nduration: 4\nresolution: 480p\n"


def tick(sensor, instance, storage, defs, cursor=None):
    with dg.build_sensor_context(
        instance=instance, cursor=cursor, resources=defs.resources, definitions=defs
    ) as context:
        return sensor(context), context


def execute(defs, instance, request: dg.RunRequest):
    job = defs.resolve_job_def(request.job_name or "clips_job")
    return job.execute_in_process(
        instance=instance,
        tags=request.tags,
        run_config=request.run_config,
        partition_key=request.partition_key,
        raise_on_error=False,
    )


def apply_partitions(instance, result: dg.SensorResult):
    for req in result.dynamic_partitions_requests or []:
        instance.add_dynamic_partitions(req.partitions_def_name, list(req.partition_keys))


def test_storage_sensor_adds_partitions_then_requests_missing_clips(storage, providers, instance, sim):
    defs = build_definitions(storage, providers)
    put(storage, "images/lake.png", png())
    put(storage, "images/bad name.png", png())  # not a partition key: ignored, named in the log
    put(storage, "prompts/dawn.yaml", PROMPT)

    first, _ = tick(storage_sensor, instance, storage, defs)
    added = {r.partitions_def_name: list(r.partition_keys) for r in first.dynamic_partitions_requests}
    assert added == {IMAGES: ["lake"], PROMPTS: ["dawn"]}
    assert sorted(r.job_name for r in first.run_requests) == ["prompts_job", "source_images_job"]
    apply_partitions(instance, first)
    for request in first.run_requests:
        assert execute(defs, instance, request).success

    second, _ = tick(storage_sensor, instance, storage, defs, cursor=first.cursor)
    assert [r.job_name for r in second.run_requests] == ["clips_job"]
    clips_request = second.run_requests[0]
    assert clips_request.run_config["ops"]["clips"]["config"]["mode"] == "missing"
    assert requests_total(sim, "submit") == 0  # the sensor itself never calls a provider
    assert execute(defs, instance, clips_request).success
    assert requests_total(sim, "submit") == 1

    third, _ = tick(storage_sensor, instance, storage, defs, cursor=second.cursor)
    assert not third.run_requests and third.skip_reason is not None
    assert json.loads(third.cursor) == json.loads(second.cursor)

    # a new image: exactly one new pair is requested, in mode "missing"
    put(storage, "images/hill.png", png((640, 640), (30, 160, 60)))
    fourth, _ = tick(storage_sensor, instance, storage, defs, cursor=third.cursor)
    assert [list(r.partition_keys) for r in fourth.dynamic_partitions_requests] == [["hill"]]
    apply_partitions(instance, fourth)
    for request in fourth.run_requests:
        assert execute(defs, instance, request).success
    fifth, _ = tick(storage_sensor, instance, storage, defs, cursor=fourth.cursor)
    assert execute(defs, instance, fifth.run_requests[0]).success
    assert requests_total(sim, "submit") == 2
    clips = {r.partition_key for r in instance.fetch_materializations(dg.AssetKey("clips"), limit=10).records}
    assert clips == {"lake|dawn", "hill|dawn"}


def _settle(defs, instance, storage, cursor=None):
    """Tick the storage sensor and run what it asks until it asks for nothing; returns the last cursor."""
    for _ in range(5):
        result, _ = tick(storage_sensor, instance, storage, defs, cursor=cursor)
        apply_partitions(instance, result)
        requests = [r for r in result.run_requests or [] if r.asset_graph_subset is None]
        for request in requests:
            assert execute(defs, instance, request).success
        cursor = result.cursor
        if not requests:
            return result
    raise AssertionError("the storage sensor kept requesting runs")


def test_storage_sensor_runs_one_prompt_per_run_tagged_with_its_provider(storage, providers, instance, sim):
    defs = build_definitions(storage, providers)
    put(storage, "images/lake.png", png())
    put(storage, "prompts/dawn.yaml", PROMPT)
    put(storage, "prompts/dusk.yaml", PROMPT.replace("novita", "runpod").replace("dawn", "dusk"))
    put(storage, "prompts/noon.yaml", PROMPT.replace("novita", "auto").replace("dawn", "noon"))
    first, _ = tick(storage_sensor, instance, storage, defs)
    apply_partitions(instance, first)
    for request in first.run_requests:
        assert execute(defs, instance, request).success
    second, _ = tick(storage_sensor, instance, storage, defs, cursor=first.cursor)
    tags = {
        r.tags["dagster/asset_partition_range_start"].split("|")[1]: r.tags["seedance/provider"]
        for r in second.run_requests
    }
    # auto: the cheapest provider for 480p, 4 s, silent (ByteDance's token rate; WaveSpeed first on a tie)
    assert tags == {"dawn": "novita", "dusk": "runpod", "noon": "wavespeed"}


def test_edit_waits_for_a_person_unless_its_forecast_fits_the_automatic_budget(storage, providers, instance, sim):
    from seedance_pipeline.ledger.budget import SpendPolicy

    put(storage, "images/lake.png", png())
    put(storage, "images/hill.png", png((640, 640), (30, 160, 60)))
    put(storage, "prompts/dawn.yaml", PROMPT)
    off = build_definitions(storage, providers, SpendPolicy())
    cursor = _settle(off, instance, storage).cursor
    assert requests_total(sim, "submit") == 2
    put(storage, "prompts/dawn.yaml", PROMPT.replace("calm lake", "stormy lake"))

    # Off by default: the sensor refreshes the prompt and then says why the outdated clips wait.
    waiting = _settle(off, instance, storage, cursor)
    assert requests_total(sim, "submit") == 2 and not waiting.run_requests

    put(storage, "prompts/dawn.yaml", PROMPT.replace("calm lake", "foggy lake"))
    each = 864 * 496 * (24 * 4 + 1) / 1024 * 1.2 / 1e6  # Novita 480p adaptive->16:9, 4 s, silent
    small = build_definitions(storage, providers, SpendPolicy(auto_backfill_usd=1.5 * each))
    refreshed, _ = tick(storage_sensor, instance, storage, small, cursor=waiting.cursor)
    for request in refreshed.run_requests:
        assert execute(small, instance, request).success
    over, _ = tick(storage_sensor, instance, storage, small, cursor=refreshed.cursor)
    assert not [r for r in over.run_requests if r.asset_graph_subset is not None]  # 2 clips > 1.5 clips' budget

    put(storage, "prompts/dawn.yaml", PROMPT.replace("calm lake", "misty lake"))
    enough = build_definitions(storage, providers, SpendPolicy(auto_backfill_usd=2.5 * each))
    refreshed, _ = tick(storage_sensor, instance, storage, enough, cursor=over.cursor)
    for request in refreshed.run_requests:
        assert execute(enough, instance, request).success
    launched, _ = tick(storage_sensor, instance, storage, enough, cursor=refreshed.cursor)
    [request] = [r for r in launched.run_requests if r.asset_graph_subset is not None]
    assert request.tags["seedance/provider"] == "novita"
    targeted = {str(p.partition_key) for p in request.asset_graph_subset.iterate_asset_partitions()}
    assert targeted == {"lake|dawn", "hill|dawn"}
    assert requests_total(sim, "submit") == 2  # launching is the daemon's job; the sensor sends nothing


def test_pending_sensor_collects_an_orphaned_task_without_resubmitting(storage, providers, instance, sim):
    defs = build_definitions(storage, providers)
    put(storage, "images/lake.png", png())
    put(storage, "prompts/dawn.yaml", PROMPT)
    instance.add_dynamic_partitions(IMAGES, ["lake"])
    instance.add_dynamic_partitions(PROMPTS, ["dawn"])
    for job in ("source_images_job", "prompts_job"):
        key = "lake" if job.startswith("source") else "dawn"
        assert defs.resolve_job_def(job).execute_in_process(instance=instance, partition_key=key).success

    # A run submitted the task, recorded it, and died before collecting it.
    prepared = prepare(
        get_adapter("novita"),
        build_request(
            prompt="a calm lake at dawn", image=storage.path("images", "lake.png"), duration=4, resolution="480p"
        ),
    )
    store = TaskStore(storage)
    record = store.create(prepared, image="lake", prompt="dawn", run_id="run-that-died", simulated=True)

    async def submit():
        async with providers.make_client("novita") as client:
            return await client.submit(prepared.wire)

    snapshot = asyncio.run(submit())
    record = store.save(record.moved(AttemptState.ACCEPTED, task_id=snapshot.task_id))
    assert requests_total(sim, "submit") == 1
    result, _ = tick(pending_tasks_sensor, instance, storage, defs)
    assert not result.run_requests and result.skip_reason  # its owner (this process) is alive: nothing to collect
    _owned_by(store, record, f"{socket.gethostname()}:{_dead_pid()}:0")  # now the owner is gone (kill -9)

    result, _ = tick(pending_tasks_sensor, instance, storage, defs)
    [request] = result.run_requests
    assert request.partition_key == "lake|dawn"
    assert request.run_config["ops"]["clips"]["config"]["collect"] == [record.attempt_id]
    assert execute(defs, instance, request).success

    assert requests_total(sim, "submit") == 1  # collected, never resubmitted
    assert store.load(record.attempt_id).state == "succeeded"
    assert store.open_records() == []
    assert storage.exists(storage.clip_path("dawn", "lake"))
    after, _ = tick(pending_tasks_sensor, instance, storage, defs)
    assert not after.run_requests and after.skip_reason


def test_pending_sensor_leaves_live_runs_alone(storage, providers, instance, sim):
    """An owner on another host cannot be checked from here: the Dagster run's status decides."""
    defs = build_definitions(storage, providers)
    put(storage, "images/lake.png", png())
    prepared = prepare(get_adapter("novita"), build_request(prompt="p", image=storage.path("images", "lake.png")))
    run = instance.create_run_for_job(
        defs.resolve_job_def("clips_job"), run_id=str(uuid.uuid4()), status=dg.DagsterRunStatus.STARTED
    )
    store = TaskStore(storage)
    intent = store.create(prepared, image="lake", prompt="dawn", run_id=run.run_id, simulated=True)
    record = store.save(intent.moved(AttemptState.ACCEPTED, task_id="t-1"))
    _owned_by(store, record, "another-host:4242:777")
    result, _ = tick(pending_tasks_sensor, instance, storage, defs)
    assert not result.run_requests and "none orphaned" in result.skip_reason.skip_message
    instance.report_run_failed(run)
    result, _ = tick(pending_tasks_sensor, instance, storage, defs)
    assert [r.run_config["ops"]["clips"]["config"]["collect"] for r in result.run_requests] == [[record.attempt_id]]


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def _owned_by(store: TaskStore, record, owner: str) -> None:
    """Rewrite a record as if another process had written it (save() always writes this process as owner)."""
    data = record.model_copy(update={"owner": owner}).model_dump_json(indent=1).encode()
    store.storage.write_bytes(store.storage.path("tasks", "days", record.day, f"{record.attempt_id}.json"), data)
    store.storage.write_bytes(store.storage.path("tasks", "open", f"{record.attempt_id}.json"), data)
