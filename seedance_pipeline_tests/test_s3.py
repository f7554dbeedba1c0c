"""Storage on S3 over the real protocol: moto's server on loopback, s3fs in the pipeline, boto3 to look.

Every test works in a bucket of its own on this module's moto server (see s3server.py).
"""

from __future__ import annotations

import gc
import hashlib
import json
import tempfile
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import dagster as dg
import pytest
from dagster._serdes import serialize_value

import seedance_pipeline.simulator.images as sim_images
from seedance_pipeline.cli.demo_data import write_demo_data
from seedance_pipeline.cli.runner import run_pipeline
from seedance_pipeline.clip.checks import RULES
from seedance_pipeline.clip.prepare import build_request, prepare
from seedance_pipeline.core.images import inspect_image
from seedance_pipeline.definitions import build_definitions
from seedance_pipeline.defs.sensors.storage import storage_sensor
from seedance_pipeline.ledger.states import AttemptState
from seedance_pipeline.ledger.store import TaskStore
from seedance_pipeline.lineage.partitions import IMAGES, PROMPTS
from seedance_pipeline.providers import get_adapter
from seedance_pipeline.storage.atomic import atomic_writer
from seedance_pipeline.storage.layout import sidecar_of
from seedance_pipeline.storage.resource import SeedanceStorage
from seedance_pipeline_tests.conftest import png, put, requests_total
from seedance_pipeline_tests.s3server import object_keys

DEMO_IMAGES = {"mountains", "tiles", "tower"}
DEMO_PROMPTS = {"dusk-dolly", "quick-pan"}
DEMO_CLIPS = {"mountains|dusk-dolly", "tiles|dusk-dolly", "tower|dusk-dolly", "mountains|quick-pan", "tower|quick-pan"}
RUNPOD_CLIPS = {"mountains|quick-pan", "tower|quick-pan"}  # the URL-only provider's prompt
SIGNATURE_MARKERS = ("X-Amz-Signature", "X-Amz-Credential", "Signature=")  # SigV4 and SigV2 query auth


def prefix(storage: SeedanceStorage) -> str:
    """The key prefix of the storage root inside its bucket ("team/storage/")."""
    return storage.root.split("/", 1)[1] + "/"


def etag(s3, bucket: str, key: str) -> str:
    return s3.head_object(Bucket=bucket, Key=key)["ETag"]


# -- 1. listings and stamps ----------------------------------------------------------------------------


def test_scans_list_keys_with_etag_stamps(s3_storage, s3, bucket):
    storage = s3_storage
    written = write_demo_data(storage)
    assert len(written) == 5
    root = prefix(storage)
    assert object_keys(s3, bucket) == {f"{root}{rel}" for rel in written}
    s3.put_object(Bucket=bucket, Key=f"{root}images/notes.txt", Body=b"not an image")

    images, rejected = storage.scan_images()
    assert {f.key for f in images} == DEMO_IMAGES
    assert [r.name for r in rejected] == ["notes.txt"]
    prompts, rejected_prompts = storage.scan_prompts()
    assert {f.key for f in prompts} == DEMO_PROMPTS and rejected_prompts == []
    for f, folder in [*((f, "images") for f in images), *((f, "prompts") for f in prompts)]:
        key = f"{root}{folder}/{f.path.rsplit('/', 1)[-1]}"
        assert f.path == f"{bucket}/{key}"
        head = s3.head_object(Bucket=bucket, Key=key)
        assert f.size == head["ContentLength"]
        assert f.stamp == f"{head['ContentLength']}:{head['ETag']}"  # ETag-based, not a time
    stamps = {f.key: f.stamp for f in images}

    # Rewriting the same bytes keeps the stamp (ETag = content MD5); new bytes change it.
    tower = storage.path("images", "tower.png")
    storage.write_bytes(tower, storage.read_bytes(tower))
    assert {f.key: f.stamp for f in storage.scan_images()[0]} == stamps
    storage.write_bytes(tower, png((640, 960), (10, 200, 90)))
    after = {f.key: f.stamp for f in storage.scan_images()[0]}
    assert after["tower"] != stamps["tower"]
    assert {k: v for k, v in after.items() if k != "tower"} == {k: v for k, v in stamps.items() if k != "tower"}

    # A change by another writer (an upload through any S3 tool) is seen too, as is a new file.
    s3.put_object(Bucket=bucket, Key=f"{root}images/tiles.png", Body=png((720, 720), (1, 2, 3)))
    s3.put_object(Bucket=bucket, Key=f"{root}images/hill.png", Body=png())
    again = {f.key: f.stamp for f in storage.scan_images()[0]}
    assert set(again) == DEMO_IMAGES | {"hill"}
    assert again["tiles"] != after["tiles"] and again["tiles"].endswith(etag(s3, bucket, f"{root}images/tiles.png"))
    assert storage.exists(storage.path("images", "hill.png"))


def test_presign_gives_a_sigv4_url_with_the_configured_expiry(s3_endpoint, bucket, s3_storage):
    path = s3_storage.path("images", "a.png")
    s3_storage.write_bytes(path, b"bytes")
    for storage in (s3_storage, SeedanceStorage(url=s3_storage.url, endpoint_url=s3_endpoint, presign_expiry_s=600)):
        url = storage.presign(storage.ref(path))
        parts = urlsplit(url)
        assert f"{parts.scheme}://{parts.netloc}" == s3_endpoint and parts.path == f"/{path}"
        query = parse_qs(parts.query)
        assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"] and query["X-Amz-Signature"]
        assert query["X-Amz-Expires"] == [str(storage.presign_expiry_s)]
        assert urlsplit(storage.presign(path)).path == parts.path  # a bare bucket/key path signs the same object
    assert SeedanceStorage(url=s3_storage.url).presign_expiry_s == 3600


def test_presign_expiry_from_the_environment(monkeypatch, s3_storage):
    monkeypatch.setenv("SEEDANCE_STORAGE_URL", s3_storage.url)
    monkeypatch.delenv("SEEDANCE_PRESIGN_EXPIRY_S", raising=False)
    assert SeedanceStorage.from_env().presign_expiry_s == 3600
    monkeypatch.setenv("SEEDANCE_PRESIGN_EXPIRY_S", "900")
    assert SeedanceStorage.from_env().presign_expiry_s == 900


# -- 2. the whole pipeline on S3 --------------------------------------------------------------------------


@pytest.fixture
def image_fetches(monkeypatch):
    """Every image URL the simulator fetched over HTTP (its providers' own fetch), with what came back."""
    fetched: list[dict] = []
    real_fetch = sim_images._fetch

    async def recording_fetch(url: str, field: str) -> bytes:
        try:
            data = await real_fetch(url, field)
        except Exception as exc:
            fetched.append({"url": url, "field": field, "error": str(exc)})
            raise
        fetched.append({"url": url, "field": field, "sha256": hashlib.sha256(data).hexdigest()})
        return data

    monkeypatch.setattr(sim_images, "_fetch", recording_fetch)
    return fetched


def test_pipeline_on_s3_presigns_images_for_the_url_only_provider(
    s3_storage, s3, bucket, s3_endpoint, providers, instance, sim, image_fetches
):
    storage = s3_storage
    write_demo_data(storage)
    root = prefix(storage)
    image_sha = {
        k: hashlib.sha256(s3.get_object(Bucket=bucket, Key=f"{root}images/{k}.png")["Body"].read()).hexdigest()
        for k in DEMO_IMAGES
    }

    started = time.monotonic()
    report = run_pipeline(instance, storage, providers)
    elapsed = time.monotonic() - started
    assert report.ok, report.failures
    assert {r.clip for r in report.clips} == DEMO_CLIPS
    assert all(r.outcome == "generated" and r.simulated and r.seconds for r in report.clips)  # probed from S3
    assert all(r.path.startswith(f"s3://{bucket}/{root}clips/") for r in report.clips)
    keys = object_keys(s3, bucket, f"{root}clips/")
    expected = set()
    for clip in DEMO_CLIPS:
        image, prompt = clip.split("|")
        expected |= {f"{root}clips/{prompt}/{image}.mp4", f"{root}clips/{prompt}/{image}.json"}
    assert keys == expected
    assert report.cost_report == f"s3://{bucket}/{root}reports/{report.cost_report.rsplit('/', 2)[-2]}/cost_report.md"
    assert s3.head_object(Bucket=bucket, Key=report.cost_report.split("/", 3)[3])["ContentLength"] > 0

    # How each image was sent: RunPod (URL-only) got presigned S3 URLs, Novita data URIs.
    for clip in DEMO_CLIPS:
        image, prompt = clip.split("|")
        sidecar = json.loads(s3.get_object(Bucket=bucket, Key=f"{root}clips/{prompt}/{image}.json")["Body"].read())
        assert sidecar["provider"] == ("runpod" if clip in RUNPOD_CLIPS else "novita")
        assert sidecar["request"]["image_sent_as"] == ("presigned-url" if clip in RUNPOD_CLIPS else "data-uri")
    days = {key.rsplit("/", 2)[-2] for key in object_keys(s3, bucket, f"{root}tasks/days/")}
    records = [r for day in sorted(days) for r in TaskStore(storage).day_records(day)]
    assert TaskStore(storage).open_records() == []
    assert {f"{r.image}|{r.prompt}" for r in records} == DEMO_CLIPS
    assert all(r.state == "succeeded" for r in records)
    assert {f"{r.image}|{r.prompt}" for r in records if r.request["image_sent_as"] == "presigned-url"} == RUNPOD_CLIPS

    # The simulator fetched each RunPod image over HTTP from moto, through a SigV4 presigned URL that
    # expires after presign_expiry_s, and got exactly the stored bytes.
    assert len(image_fetches) == len(RUNPOD_CLIPS), image_fetches
    for fetch in image_fetches:
        assert "error" not in fetch, fetch
        parts = urlsplit(fetch["url"])
        assert f"{parts.scheme}://{parts.netloc}" == s3_endpoint
        assert parts.path.startswith(f"/{bucket}/{root}images/")
        key = parts.path.rsplit("/", 1)[-1].removesuffix(".png")
        assert fetch["sha256"] == image_sha[key]
        query = parse_qs(parts.query)
        assert query["X-Amz-Signature"] and query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
        assert query["X-Amz-Expires"] == [str(storage.presign_expiry_s)] == ["3600"]
    assert sorted(urlsplit(f["url"]).path.rsplit("/", 1)[-1] for f in image_fetches) == ["mountains.png", "tower.png"]
    # ... and the submits it recorded carry those bytes (images are recorded as their sha256)
    runpod_submits = [s for s in sim.sim.submits() if s["provider"] == "runpod"]
    assert sorted(s["body"]["input"]["image"] for s in runpod_submits) == sorted(
        f"sha256:{image_sha[k]}" for k in ("mountains", "tower")
    )
    assert all(s["accepted"] for s in runpod_submits)
    assert {t["image_sha256"] for t in sim.sim.tasks() if t["provider"] == "runpod"} == {
        image_sha["mountains"],
        image_sha["tower"],
    }

    # Nothing to do the second time: not one provider request.
    before = requests_total(sim)
    second = run_pipeline(instance, storage, providers)
    assert second.ok and second.clips == []
    assert requests_total(sim) == before
    assert len(image_fetches) == len(RUNPOD_CLIPS)

    # 5. No presigned URL (with its signature) in the run's logs, metadata or stored records.
    leaks = presigned_url_leaks(instance, [*report.runs.values(), *second.runs.values()], s3, bucket, root)
    assert leaks == [], leaks
    print(f"\npipeline on S3: first run {elapsed:.1f} s")


def presigned_url_leaks(instance, run_ids, s3, bucket: str, root: str) -> list[str]:
    found, searched_metadata = [], False
    for run_id in run_ids:
        for entry in instance.all_logs(run_id):
            text = serialize_value(entry)  # message, metadata, tags: the whole record
            searched_metadata |= f"s3://{bucket}/{root}clips/" in text  # the clips' path metadata
            if any(m in text for m in SIGNATURE_MARKERS):
                kind = entry.dagster_event.event_type_value if entry.dagster_event else "log message"
                found.append(f"run {run_id[:8]} {kind}: {(entry.user_message or '')[:120]}")
    for key in sorted(object_keys(s3, bucket, root)):
        if key.endswith((".mp4", ".parquet")):
            continue
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode(errors="replace")
        if any(m in body for m in SIGNATURE_MARKERS):
            found.append(f"object {key}")
    assert searched_metadata
    return found


# -- 3. the storage sensor on S3 ---------------------------------------------------------------------------


def tick(instance, storage, defs, cursor=None):
    with dg.build_sensor_context(
        instance=instance, cursor=cursor, resources=defs.resources, definitions=defs
    ) as context:
        return storage_sensor(context)


def run_requested(defs, instance, request: dg.RunRequest) -> bool:
    job = defs.resolve_job_def(request.job_name)
    return job.execute_in_process(
        instance=instance, tags=request.tags, run_config=request.run_config, raise_on_error=False
    ).success


def apply_partitions(instance, result: dg.SensorResult) -> None:
    for req in result.dynamic_partitions_requests or []:
        instance.add_dynamic_partitions(req.partitions_def_name, list(req.partition_keys))


def test_storage_sensor_on_s3(s3_storage, s3, bucket, providers, instance, sim):
    storage = s3_storage
    defs = build_definitions(storage, providers)
    write_demo_data(storage)

    first = tick(instance, storage, defs)
    added = {r.partitions_def_name: sorted(r.partition_keys) for r in first.dynamic_partitions_requests}
    assert added == {IMAGES: sorted(DEMO_IMAGES), PROMPTS: sorted(DEMO_PROMPTS)}
    assert sorted(r.job_name for r in first.run_requests) == ["prompts_job", "source_images_job"]
    assert all(
        r.run_config["ops"][r.job_name.removesuffix("_job")]["config"]["only_changed"] for r in first.run_requests
    )
    apply_partitions(instance, first)
    for request in first.run_requests:
        assert run_requested(defs, instance, request)
    stamps = json.loads(
        s3.get_object(Bucket=bucket, Key=f"{prefix(storage)}state/stamps/source_images.json")["Body"].read()
    )
    assert set(stamps) == DEMO_IMAGES  # the refresh run recorded the ETag stamps in S3

    second = tick(instance, storage, defs, cursor=first.cursor)
    # one clips run per prompt, tagged with the prompt's provider
    assert sorted((r.job_name, r.tags["seedance/provider"]) for r in second.run_requests) == [
        ("clips_job", "novita"),
        ("clips_job", "runpod"),
    ]
    assert not second.dynamic_partitions_requests
    assert requests_total(sim) == 0  # the sensor never calls a provider

    # Another writer uploads a new image and replaces one: the next tick sees both.
    root = prefix(storage)
    s3.put_object(Bucket=bucket, Key=f"{root}images/hill.png", Body=png((640, 640), (30, 160, 60)))
    s3.put_object(Bucket=bucket, Key=f"{root}images/tiles.png", Body=png((720, 720), (9, 9, 9)))
    third = tick(instance, storage, defs, cursor=second.cursor)
    assert [sorted(r.partition_keys) for r in third.dynamic_partitions_requests] == [["hill"]]
    assert [r.job_name for r in third.run_requests] == ["source_images_job"]
    tiles = next(f for f in storage.scan_images()[0] if f.key == "tiles")
    assert tiles.stamp != stamps["tiles"]


# -- 4. atomic writes and task records on S3 -------------------------------------------------------------


@pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize("size", [1000, 6 * 2**20], ids=["one-put", "multipart"])
def test_atomic_writer_on_s3(s3_storage, s3, bucket, size):
    storage, root = s3_storage, prefix(s3_storage)
    fresh, existing = storage.path("out", "fresh.bin"), storage.path("out", "existing.bin")
    storage.write_bytes(existing, b"old content")
    for path in (fresh, existing):
        with pytest.raises(RuntimeError, match="boom"), atomic_writer(storage.fs, path) as fh:
            fh.write(b"x" * size)
            fh.flush()  # past the 5 MiB block size this starts a multipart upload
            fh.write(b"y" * 10)
            raise RuntimeError("boom")
    gc.collect()  # a discarded handle must not upload when it is collected either
    assert object_keys(s3, bucket) == {f"{root}out/existing.bin"}
    assert s3.get_object(Bucket=bucket, Key=f"{root}out/existing.bin")["Body"].read() == b"old content"
    assert not s3.list_multipart_uploads(Bucket=bucket).get("Uploads")  # aborted, nothing left to bill
    assert not storage.exists(fresh)

    data = bytes(range(256)) * (size // 256 + 1)
    with atomic_writer(storage.fs, fresh) as fh:
        fh.write(data[: len(data) // 2])
        fh.write(data[len(data) // 2 :])
    assert s3.get_object(Bucket=bucket, Key=f"{root}out/fresh.bin")["Body"].read() == data
    assert storage.read_bytes(fresh) == data


def test_task_records_round_trip_on_s3(s3_storage, s3, bucket):
    storage, root = s3_storage, prefix(s3_storage)
    path = storage.path("images", "lake.png")
    data = png()
    storage.write_bytes(path, data)
    image = inspect_image(path, data)
    prepared = prepare(
        get_adapter("novita"),
        build_request(prompt="a calm lake", image=path, duration=4, resolution="480p"),
        images={path: image},
    )
    store = TaskStore(storage)
    assert store.open_records() == [] and store.for_fingerprint(prepared.fingerprint) == []

    first = store.create(prepared, image="lake", prompt="dawn", run_id="run-1", simulated=True)
    assert first.state == "intent"
    assert f"{root}tasks/by-fingerprint/{prepared.fingerprint}/{first.attempt_id}" in object_keys(s3, bucket)
    assert [r.attempt_id for r in store.open_records()] == [first.attempt_id]
    accepted = store.save(first.moved(AttemptState.ACCEPTED, task_id="t-1"))
    assert store.load(first.attempt_id) == accepted
    assert [r.model_dump() for r in store.open_records()] == [accepted.model_dump()]

    second = store.create(prepared, image="lake", prompt="dawn", run_id="run-2", simulated=True)
    done = store.save(accepted.moved(AttemptState.SUCCEEDED, output=storage.clip_path("dawn", "lake")))
    assert [r.attempt_id for r in store.open_records()] == [second.attempt_id]
    assert f"{root}tasks/open/{first.attempt_id}.json" not in object_keys(s3, bucket)
    by_fp = store.for_fingerprint(prepared.fingerprint)
    assert [r.attempt_id for r in by_fp] == sorted([first.attempt_id, second.attempt_id])
    by_id = {r.attempt_id: r for r in by_fp}  # ids sort by start second, then at random
    assert by_id[first.attempt_id] == done and by_id[second.attempt_id] == second
    assert done.request == prepared.describe()
    assert {r.attempt_id for r in store.day_records(first.day)} | {
        r.attempt_id for r in store.day_records(second.day)
    } == {first.attempt_id, second.attempt_id}
    assert store.day_records("1999-01-01") == []


# -- 5. planning a run's clips: one listing per prompt, not a lookup per clip ----------------------------


def test_planning_lists_each_prompt_folder_once(s3_endpoint, bucket):
    """25 clips of one prompt, 2 already stored and checked: the same reuse decisions with and without the
    listing, and the 23 new clips cost no read of their own with it (without: a sidecar read per place)."""
    from seedance_pipeline.planning.reuse import StoredClips, find_reusable, keep_current_version
    from seedance_pipeline.planning.select import Candidate, Item
    from seedance_pipeline_tests.s3faults import S3FaultProxy

    with S3FaultProxy(s3_endpoint) as proxy:
        storage = SeedanceStorage(url=f"s3://{bucket}/team/storage", endpoint_url=proxy.url)
        items = []
        for i in range(25):
            data = png(color=(i, 120, 40))
            path = put(storage, f"images/img{i:02d}.png", data)
            prepared = prepare(
                get_adapter("novita"),
                build_request(prompt="a calm lake", image=path, duration=4, resolution="480p"),
                images={path: inspect_image(path, data)},
            )
            items.append(Item(f"img{i:02d}", "dawn", None, {}, candidates=[Candidate(prepared, simulated=True)]))
        for it in items[:2]:
            clip = storage.clip_path(it.prompt, it.image)
            storage.write_bytes(clip, b"\0" * 100)
            storage.write_bytes(
                sidecar_of(clip),
                json.dumps(
                    {
                        "fingerprint": it.candidates[0].prepared.fingerprint,
                        "size_bytes": 100,
                        "checks": {"plays_to_end": True, "matches_request": True},
                    }
                ).encode(),
            )
        assert StoredClips.for_items(storage, items[: StoredClips.LIST_FROM - 1]) is None  # too few to pay off

        def plan(stored):
            before = proxy.counts["reads"]
            reused = {it.image for it in items if find_reusable(storage, it, {}, stored)}
            for it in items[2:]:
                keep_current_version(storage, it.prompt, it.image, it.candidates[0].prepared.fingerprint, stored)
            return reused, proxy.counts["reads"] - before

        without, reads_without = plan(None)
        stored = StoredClips.for_items(storage, items)
        listed, reads_with = plan(stored)
        assert without == listed == {"img00", "img01"}
        assert reads_without >= 3 * 23  # own sidecar, kept version's sidecar, own sidecar again: each a 404
        before = proxy.counts["reads"]
        for it in items[:2]:
            assert find_reusable(storage, it, {}, None) is not None
        assert reads_with == proxy.counts["reads"] - before  # only what reading the two stored clips costs
        print(f"\nplanning 25 clips on S3: {reads_without} reads without the listing, {reads_with} + 1 listing with it")


@pytest.mark.slow
def test_a_rerun_of_every_pair_on_s3_reuses_each_stored_clip(s3_storage, providers, instance, sim):
    """The listing in the real run path: 20 clips of one prompt made, then all 20 asked for again (mode
    ``all``): each is found through the prompt folder's listing and reused, and the provider sees nothing."""
    from seedance_pipeline.cli.run_report import clip_rows
    from seedance_pipeline.lineage.partitions import clip_range_tags
    from seedance_pipeline.planning.reuse import StoredClips

    storage = s3_storage
    images = [f"img{i:02d}" for i in range(StoredClips.LIST_FROM)]
    for i, key in enumerate(images):
        put(storage, f"images/{key}.png", png(color=(10 * i, 120, 40)))
    put(storage, "prompts/wave.yaml", 'text: "a slow wave"\nprovider: novita\nduration: 4\nresolution: 480p\n')
    first = run_pipeline(instance, storage, providers)
    assert first.ok, first.failures
    assert sorted(r.clip for r in first.clips) == [f"{i}|wave" for i in images]
    assert all(r.outcome == "generated" for r in first.clips)
    submits = len(sim.sim.submits())

    result = (
        build_definitions(storage, providers)
        .resolve_job_def("clips_job")
        .execute_in_process(
            instance=instance,
            tags=clip_range_tags(images, ["wave"]),
            raise_on_error=False,
            run_config={"ops": {"clips": {"config": {"mode": "all"}}}},
        )
    )
    assert result.success
    again = clip_rows(instance, result.run_id)
    assert sorted(r.clip for r in again) == [f"{i}|wave" for i in images]
    assert all(r.outcome == "reused" for r in again), [(r.clip, r.outcome) for r in again]
    assert len(sim.sim.submits()) == submits


def test_an_intent_on_s3_is_two_round_trips_its_record_last(s3_endpoint, bucket):
    """Before a submit, the request's marker and the attempt's open copy are sent at once (the proxy holds each
    until the other arrives), and the record, whose presence says the POST may have left, only after both."""
    from seedance_pipeline_tests.s3faults import S3FaultProxy

    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "s3.log"
        together = ("/tasks/by-fingerprint/", "/tasks/open/")
        with S3FaultProxy(s3_endpoint, log_path=str(log), together=together) as proxy:
            storage = SeedanceStorage(url=f"s3://{bucket}/intent/storage", endpoint_url=proxy.url)
            path = put(storage, "images/lake.png", png())
            image = inspect_image(path, storage.read_bytes(path))
            request = build_request(prompt="a calm lake", image=path, duration=4, resolution="480p")
            prepared = prepare(get_adapter("novita"), request, images={path: image})
            record = TaskStore(storage).create(prepared, image="lake", prompt="dawn", run_id="r", simulated=True)
            assert TaskStore(storage).written(record.attempt_id)
        puts = [line.split(" ", 1)[1] for line in log.read_text().splitlines() if line.startswith("PUT ")]
    assert proxy.counts["together"] == 2
    tasks = [p.split("/tasks/", 1)[1].split("/", 1)[0] for p in puts if "/tasks/" in p]
    assert sorted(tasks[:2]) == ["by-fingerprint", "open"] and tasks[2:] == ["days"]


def test_a_clip_on_s3_is_checked_from_the_bytes_it_was_uploaded_from(s3_endpoint, bucket, providers, instance, sim):
    """Each new clip is probed (every frame decoded) from the bytes its upload sent, so a run never reads a
    clip back (a HEAD and a GET per clip); retiring an attempt's open copy is one DELETE, no HEAD first; every
    read is one GET, with no HEAD for the object's size first; and finding a request's attempts lists only its
    own markers (s3fs's ``ls`` of an empty prefix lists its parent too: every request ever made)."""
    from seedance_pipeline_tests.s3faults import S3FaultProxy

    images = [f"img{i}" for i in range(3)]
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "s3.log"
        with S3FaultProxy(s3_endpoint, log_path=str(log)) as proxy:
            storage = SeedanceStorage(url=f"s3://{bucket}/team/storage", endpoint_url=proxy.url)
            for i, key in enumerate(images):
                put(storage, f"images/{key}.png", png(color=(60 * i, 120, 40)))
            put(storage, "prompts/wave.yaml", 'text: "a slow wave"\nprovider: novita\nduration: 4\nresolution: 480p\n')
            result = run_pipeline(instance, storage, providers)
            requests = [line.split(" ", 1) for line in log.read_text().splitlines()]
            assert result.ok, result.failures
            assert sorted((r.clip, r.outcome) for r in result.clips) == [(f"{i}|wave", "generated") for i in images]
            for key in images:
                sidecar = json.loads(storage.read_bytes(storage.sidecar_path("wave", key)))
                assert sidecar["checks"] == dict.fromkeys(RULES, True)
                assert sidecar["size_bytes"] == storage.fs.size(storage.clip_path("wave", key)) > 0
            assert TaskStore(storage).open_records() == []  # every open copy was deleted
    paths = [(method, path.split("?")[0]) for method, path in requests]
    assert len([p for m, p in paths if m == "PUT" and p.endswith(".mp4")]) == len(images)  # the log sees clips
    assert [f"{m} {p}" for m, p in paths if m in ("GET", "HEAD") and p.endswith(".mp4")] == []
    assert [p for m, p in paths if m == "HEAD" and "/tasks/open/" in p] == []
    # tasks/open/ is listed in one request, also empty (s3fs's find of an empty prefix adds a HEAD and a listing)
    assert [p for m, p in paths if m == "HEAD" and p.endswith("/tasks/open")] == []
    got = {p for m, p in paths if m == "GET"}
    assert len(got) > 10  # images, records, stamps...
    assert sorted(p for m, p in paths if m == "HEAD" and p in got) == []
    # Looking up a request's attempts is one listing of its own markers, never one of every request's folder.
    listed = [parse_qs(urlsplit(path).query).get("prefix", [""])[0] for m, path in requests if "list-type" in path]
    assert sum(p.endswith("/tasks/by-fingerprint/") for p in listed) == 0, listed
    assert sum("/tasks/by-fingerprint/" in p for p in listed) == len(images)


def test_a_forecast_takes_unchanged_images_from_the_facts_registration_recorded(
    s3_endpoint, bucket, providers, instance
):
    """A plan that sends nothing reads no image that registration described and that still has the ETag it had
    then: the same plan as from the files themselves. An image replaced since is read, and refused as changed."""
    from seedance_pipeline.cli.run_report import RunReport
    from seedance_pipeline.cli.runner import Executor, refresh_sources
    from seedance_pipeline.planning.backfill import plan
    from seedance_pipeline.storage import layout
    from seedance_pipeline_tests.s3faults import S3FaultProxy

    sizes = {"wide": (640, 360), "tall": (360, 640), "square": (400, 400)}
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "s3.log"
        with S3FaultProxy(s3_endpoint, log_path=str(log)) as proxy:
            storage = SeedanceStorage(url=f"s3://{bucket}/team/storage", endpoint_url=proxy.url)
            for key, size in sizes.items():
                put(storage, f"images/{key}.png", png(size=size))
            put(storage, "prompts/wave.yaml", 'text: "a slow wave"\nprovider: auto\naspect_ratio: adaptive\n')
            defs = build_definitions(storage, providers)
            refresh_sources(instance, storage, Executor(instance, defs, RunReport(), "CRITICAL"))

            def forecast():
                before = len(log.read_text().splitlines())
                result = plan(instance, storage, providers, mode="missing")
                lines = log.read_text().splitlines()[before:]
                image_reads = sorted(
                    p.split("?")[0].rsplit("/", 1)[-1]
                    for m, p in map(str.split, lines)
                    if m == "GET" and "/images/" in p
                )
                return result, image_reads

            from_facts, reads = forecast()
            assert reads == []
            assert sorted(c.image for c in from_facts.clips) == sorted(sizes) and not from_facts.failures
            facts = storage.path(layout.image_facts())
            saved = storage.read_bytes(facts)
            storage.fs.rm(facts)
            from_files, reads = forecast()
            assert reads == ["square.png", "tall.png", "wide.png"]
            assert from_files.clips == from_facts.clips  # the same providers and prices, image by image
            storage.write_bytes(facts, saved)
            put(storage, "images/tall.png", png(size=(360, 640), color=(1, 2, 3)))  # a new ETag, not registered
            changed, reads = forecast()
            assert reads == ["tall.png"]
            assert sorted(c.image for c in changed.clips) == ["square", "wide"]
            assert len(changed.failures) == 1 and "tall" in changed.failures[0] and "changed" in changed.failures[0]


def test_a_gallery_on_s3_links_presigned_urls_that_work_without_credentials(s3_storage, providers, instance, sim):
    import httpx

    from seedance_pipeline.review.gallery import build_gallery
    from seedance_pipeline_tests.test_gallery import cards

    storage = s3_storage
    put(storage, "images/dune.png", png(color=(200, 160, 90)))
    put(storage, "prompts/wave.yaml", 'text: "a slow wave"\nprovider: novita\nduration: 4\nresolution: 480p\n')
    assert run_pipeline(instance, storage, providers).ok
    page = build_gallery(storage, "wave")
    assert page.path == f"s3://{storage.root}/galleries/wave.html" and page.takes == 1
    html_text = storage.read_bytes(storage.path("galleries/wave.html")).decode()
    until = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(page.expires_at))
    assert f"work without credentials until {until}" in html_text
    card = cards(storage, "wave")["dune|wave"]
    for url, wanted in ((card["src"], storage.clip_path("wave", "dune")), (card["poster"], None)):
        assert any(m in url for m in SIGNATURE_MARKERS)
        got = httpx.get(url, timeout=10)  # no credentials: the URL is the permission
        assert got.status_code == 200
        if wanted:
            assert got.content == storage.read_bytes(wanted)
        else:
            assert got.content[:3] == b"\xff\xd8\xff"
