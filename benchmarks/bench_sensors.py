"""Benchmark 5: one sensor tick at scale.

Storage sensor, with I images (full: 20,000; quick: 2,000) and 5 prompts (full: 100,000 clip partitions, the
size the README says the design supports), on local storage and on an
S3-protocol server (moto's, on loopback; the storage reads it through s3fs like any S3 bucket):

- first tick: nothing registered yet (every file new);
- steady-state tick: every file registered, materialized, and stamped; nothing changed.

A tick here = one call of the sensor function through ``dg.build_sensor_context(instance=, definitions=,
resources=)`` until it returns its ``SensorResult`` / ``SkipReason`` (listing both folders, reading the stamp
indexes, the instance queries for partitions and latest versions, building run and partition requests).
Not included: the daemon's own work afterwards (adding partitions, launching runs).

The images are small files (the sensor lists and stamps; it reads no image). The steady state is set up as
``source_images``/``prompts`` runs would leave it: dynamic partitions added, one materialization per
partition recorded (runless events, so the seeding is not timed) and the stamp index written. The instance
is an ephemeral one (SQLite in memory): seeding 20,000 events into a SQLite file instance costs ~50 ms each
on this machine, too slow for a benchmark; the tick's queries are the same SQL.

Pending-tasks sensor: T open task records (full: 5,000; quick: 500) in ``tasks/open/``, spread over 100
runs, half alive (STARTED) and half finished (FAILURE), so half the records are orphaned and get a collect
``RunRequest``. Timed: one tick on local storage.
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from pathlib import Path

from benchmarks.common import loadavg, quiet_dagster, report


def _write_local(root: Path, n_images: int, n_prompts: int) -> None:
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "prompts").mkdir(parents=True, exist_ok=True)
    for i in range(n_images):
        (root / "images" / f"img{i:05d}.png").write_bytes(b"\x89PNG" + i.to_bytes(4, "big"))
    for j in range(n_prompts):
        (root / "prompts" / f"p{j:02d}.yaml").write_text(f'text: "prompt {j}"\nprovider: novita\n')


def _write_s3(storage, n_images: int, n_prompts: int) -> None:
    """Objects straight into the moto server's backend (same process): 20,000 HTTP PUTs to moto take minutes."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends

    backend = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
    bucket, _, prefix = storage.root.partition("/")
    for i in range(n_images):
        backend.put_object(bucket, f"{prefix}/images/img{i:05d}.png", b"\x89PNG" + i.to_bytes(4, "big"))
    for j in range(n_prompts):
        backend.put_object(
            bucket, f"{prefix}/prompts/p{j:02d}.yaml", f'text: "prompt {j}"\nprovider: novita\n'.encode()
        )


def _seed_steady_state(instance, storage) -> None:
    """What source_images/prompts runs leave behind: partitions, one materialization each, the stamps."""
    from seedance_pipeline.lineage import versions
    from seedance_pipeline.lineage.names import IMAGES_KEY, IMAGES_STAMPS, PROMPTS_KEY, PROMPTS_STAMPS
    from seedance_pipeline.lineage.partitions import IMAGES, PROMPTS

    images, _ = storage.scan_images()
    prompts, _ = storage.scan_prompts()
    known_i = set(instance.get_dynamic_partitions(IMAGES))
    if not known_i:
        instance.add_dynamic_partitions(IMAGES, [f.key for f in images])
        instance.add_dynamic_partitions(PROMPTS, [f.key for f in prompts])
        for key, files in ((IMAGES_KEY, images), (PROMPTS_KEY, prompts)):
            for f in files:
                instance.report_runless_asset_event(
                    versions.materialization(key, f.key, data_version=f"v-{f.key}", code_version="1", metadata={})
                )
    storage.update_stamps(IMAGES_STAMPS, {f.key: f.stamp for f in images})
    storage.update_stamps(PROMPTS_STAMPS, {f.key: f.stamp for f in prompts})


def _tick(sensor, instance, storage, defs, cursor=None):
    import dagster as dg

    with dg.build_sensor_context(
        instance=instance, cursor=cursor, resources=defs.resources, definitions=defs
    ) as context:
        t0 = time.monotonic()
        result = sensor(context)
        return time.monotonic() - t0, result


@contextlib.contextmanager
def _s3_storage():
    from seedance_pipeline.storage.resource import SeedanceStorage
    from seedance_pipeline_tests.s3server import dummy_aws_environ

    with dummy_aws_environ():
        import logging

        import boto3
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="bench")
        try:
            yield SeedanceStorage(url="s3://bench/storage", endpoint_url=endpoint)
        finally:
            server.stop()


def storage_sensor_figures(label: str, storage, n_images: int, n_prompts: int, steady_instance, quick: bool) -> None:
    import dagster as dg

    from seedance_pipeline.definitions import build_definitions
    from seedance_pipeline.defs.sensors.storage import storage_sensor

    defs = build_definitions(storage)
    with dg.instance_for_test() as fresh:
        first_s, first = _tick(storage_sensor, fresh, storage, defs)
    added = sum(len(r.partition_keys) for r in getattr(first, "dynamic_partitions_requests", None) or [])
    report(
        "5",
        f"storage sensor first tick, {label}",
        first_s,
        "s",
        "< 10",
        note=f"{n_images} images + {n_prompts} prompts all new: {added} partitions and "
        f"{len(getattr(first, 'run_requests', None) or [])} runs requested; {loadavg()}",
    )
    t0 = time.monotonic()
    _seed_steady_state(steady_instance, storage)
    seed_s = time.monotonic() - t0
    # One tick sees the seeded materializations as new (and requests their clips); the steady state is the
    # tick after it, with its cursor.
    _, settle = _tick(storage_sensor, steady_instance, storage, defs)
    steady_s, steady = _tick(storage_sensor, steady_instance, storage, defs, cursor=settle.cursor)
    what = getattr(steady, "skip_reason", None)
    what = what.skip_message if what is not None else f"{len(getattr(steady, 'run_requests', []) or [])} run requests"
    listing = ""
    if storage.url.startswith("s3://"):
        listing = f"; the S3 server alone takes {_raw_listing_s(storage):.1f} s to list images/ (raw list_objects_v2)"
    report(
        "5",
        f"storage sensor steady-state tick, {label}",
        steady_s,
        "s",
        "< 10",
        note=f"nothing changed -> {what!r}; (untimed seeding {seed_s:.0f} s){listing}; {loadavg()}",
    )


def _raw_listing_s(storage) -> float:
    """The S3 server's own share: the same listing with boto3 and nothing else (no s3fs, no sensor)."""
    import boto3

    bucket, _, prefix = storage.root.partition("/")
    client = boto3.client("s3", endpoint_url=storage.endpoint_url)
    t0 = time.monotonic()
    for _page in client.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix=f"{prefix}/images/", Delimiter="/"
    ):
        pass
    return time.monotonic() - t0


def pending_sensor_figure(n_tasks: int) -> None:
    import dagster as dg
    from dagster._core.test_utils import create_run_for_test

    from seedance_pipeline.definitions import build_definitions
    from seedance_pipeline.defs.sensors.pending_tasks import pending_tasks_sensor
    from seedance_pipeline.ledger.records import AttemptRecord
    from seedance_pipeline.storage.resource import SeedanceStorage

    with tempfile.TemporaryDirectory(prefix="seedance-bench5p-") as tmp, dg.instance_for_test() as instance:
        storage = SeedanceStorage(url=str(Path(tmp) / "storage"))
        runs = []
        for r in range(100):
            status = dg.DagsterRunStatus.STARTED if r % 2 == 0 else dg.DagsterRunStatus.FAILURE
            runs.append(create_run_for_test(instance, job_name="clips_job", status=status).run_id)
        open_dir = Path(storage.path("tasks", "open"))
        open_dir.mkdir(parents=True)
        now = time.time()
        for i in range(n_tasks):
            attempt = f"2026-11-22T120000Z-{i:010x}"
            rec = AttemptRecord(
                attempt_id=attempt,
                fingerprint=f"{i:064x}",
                image=f"img{i:05d}",
                prompt="p00",
                provider="novita",
                state="accepted",
                run_id=runs[i % 100],
                task_id=f"task-{i}",
                request={"width": 864, "height": 480},
                estimated_cost_usd=0.1,
                created_at=now,
                updated_at=now,
            )
            data = rec.model_dump_json(indent=1)
            (open_dir / f"{attempt}.json").write_text(data)
        defs = build_definitions(storage)
        seconds, result = _tick(pending_tasks_sensor, instance, storage, defs)
        n_runs = len(result.run_requests or []) if isinstance(result, dg.SensorResult) else 0
    report(
        "5",
        f"pending-tasks sensor tick, {n_tasks} tasks in flight, local",
        seconds,
        "s",
        "< 20",
        note=f"100 runs (50 alive); {n_runs} collect runs requested for the orphaned half; {loadavg()}",
    )
    # Every attempt of a dead run, and none of a live one: the tick's answer, not only its time.
    report("5", f"collect runs requested, {n_tasks} tasks (half orphaned)", n_runs, "", f">= {n_tasks // 2}")


def run(quick: bool = False) -> None:
    import dagster as dg

    from seedance_pipeline.storage.resource import SeedanceStorage

    n_images, n_prompts, n_tasks = (2000, 5, 500) if quick else (20000, 5, 5000)
    scaled = " (quick: scaled down)" if quick else ""
    print(
        f"[5] sensor ticks: {n_images} images + {n_prompts} prompts; {n_tasks} open tasks{scaled}; {loadavg()}",
        flush=True,
    )
    with quiet_dagster():
        steady = dg.DagsterInstance.ephemeral()
        with tempfile.TemporaryDirectory(prefix="seedance-bench5-") as tmp:
            root = Path(tmp) / "storage"
            _write_local(root, n_images, n_prompts)
            storage_sensor_figures("local", SeedanceStorage(url=str(root)), n_images, n_prompts, steady, quick)
        with _s3_storage() as s3:
            t0 = time.monotonic()
            _write_s3(s3, n_images, n_prompts)
            print(
                f"    ({n_images + n_prompts} objects uploaded to the S3 server"
                f" in {time.monotonic() - t0:.0f} s, untimed)",
                flush=True,
            )
            storage_sensor_figures("S3 (moto server)", s3, n_images, n_prompts, steady, quick)
        pending_sensor_figure(n_tasks)
