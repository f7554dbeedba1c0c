"""Sources that disappear: a file that is gone retires its partitions (run and storage sensor alike), no refresh
fails for it, and its clips stay in storage and come back without a request when the file returns or is
copied under another name (real runs against the simulator on loopback)."""

from __future__ import annotations

import dagster as dg

from seedance_pipeline.cli.demo_data import write_demo_data
from seedance_pipeline.cli.run_report import format_report
from seedance_pipeline.cli.runner import run_pipeline
from seedance_pipeline.definitions import build_definitions
from seedance_pipeline.defs.sensors.storage import storage_sensor
from seedance_pipeline.lineage.partitions import IMAGES, PROMPTS
from seedance_pipeline_tests.conftest import requests_total
from seedance_pipeline_tests.test_sensors import tick


def _clip_files(storage) -> dict[str, bytes]:
    return {p: storage.read_bytes(p) for p in storage.fs.find(storage.path("clips")) if p.endswith(".mp4")}


def test_a_deleted_and_a_renamed_image_retire_their_partitions_and_lose_no_clip(storage, providers, instance, sim):
    write_demo_data(storage)
    assert run_pipeline(instance, storage, providers).ok
    clips_before = _clip_files(storage)
    submits = requests_total(sim, "submit")

    storage.fs.rm(storage.path("images", "mountains.png"))
    storage.fs.mv(storage.path("images", "tower.png"), storage.path("images", "tower2.png"))
    report = run_pipeline(instance, storage, providers)

    assert report.ok, report.failures
    assert [line.split(" ", 2)[:2] for line in report.retired] == [["image", "mountains"], ["image", "tower"]]
    text = format_report(report)
    assert "retired image mountains (images/mountains.* is gone)" in text and "FAILED" not in text
    assert sorted(instance.get_dynamic_partitions(IMAGES)) == ["tiles", "tower2"]
    # The renamed copy's clip is the same request (same image bytes): reused, no request sent. (quick-pan names
    # its images, and tower2 is not one of them.)
    assert {r.clip: r.outcome for r in report.clips} == {"tower2|dusk-dolly": "reused"}
    assert requests_total(sim, "submit") == submits
    # Nothing paid for was deleted: every clip of the retired images is where it was.
    after = _clip_files(storage)
    assert all(after.get(path) == data for path, data in clips_before.items())

    # Every later run succeeds too, and changes nothing.
    again = run_pipeline(instance, storage, providers)
    assert again.ok and again.retired == [] and again.clips == []


def clips_source(storage, key: str) -> bytes:
    return storage.read_bytes(storage.path("images", f"{key}.png"))


def test_an_image_deleted_then_restored_as_it_was_costs_nothing(storage, providers, instance, sim):
    write_demo_data(storage)
    assert run_pipeline(instance, storage, providers).ok
    original = storage.read_bytes(storage.path("images", "mountains.png"))
    submits = requests_total(sim, "submit")

    storage.fs.rm(storage.path("images", "mountains.png"))
    assert run_pipeline(instance, storage, providers).ok
    storage.write_bytes(storage.path("images", "mountains.png"), original)
    report = run_pipeline(instance, storage, providers)

    assert report.ok, report.failures
    assert "mountains" in instance.get_dynamic_partitions(IMAGES)
    assert requests_total(sim, "submit") == submits  # its clips were still stored: made from the same request
    assert all(r.outcome == "reused" for r in report.clips), report.clips


def test_a_deleted_prompt_retires_its_clips_and_restoring_it_restores_them_for_free(storage, providers, instance, sim):
    write_demo_data(storage)
    assert run_pipeline(instance, storage, providers).ok
    prompt_path = storage.path("prompts", "quick-pan.yaml")
    text = storage.read_bytes(prompt_path)
    clips_before = _clip_files(storage)
    submits = requests_total(sim, "submit")

    storage.fs.rm(prompt_path)
    report = run_pipeline(instance, storage, providers)
    assert report.ok, report.failures
    assert report.retired and report.retired[0].startswith("prompt quick-pan (prompts/quick-pan.* is gone)")
    assert instance.get_dynamic_partitions(PROMPTS) == ["dusk-dolly"]
    assert _clip_files(storage) == clips_before

    storage.write_bytes(prompt_path, text)
    report = run_pipeline(instance, storage, providers)
    assert report.ok, report.failures
    assert sorted(instance.get_dynamic_partitions(PROMPTS)) == ["dusk-dolly", "quick-pan"]
    assert requests_total(sim, "submit") == submits


def test_the_storage_sensor_retires_a_gone_file_and_refreshes_the_others(storage, providers, instance, sim):
    write_demo_data(storage)
    defs = build_definitions(storage, providers)
    assert run_pipeline(instance, storage, providers).ok
    storage.fs.rm(storage.path("images", "mountains.png"))
    storage.write_bytes(storage.path("images", "tiles.png"), clips_source(storage, "tower"))  # changed content

    result, _ = tick(storage_sensor, instance, storage, defs)

    deletes = [r for r in result.dynamic_partitions_requests if isinstance(r, dg.DeleteDynamicPartitionsRequest)]
    assert [(r.partitions_def_name, list(r.partition_keys)) for r in deletes] == [(IMAGES, ["mountains"])]
    refresh = next(r for r in result.run_requests if r.job_name == "source_images_job")
    # The refresh's range covers only files that exist: it cannot fail on the gone one.
    instance.delete_dynamic_partition(IMAGES, "mountains")
    job = defs.resolve_job_def("source_images_job")
    run = job.execute_in_process(instance=instance, tags=refresh.tags, run_config=refresh.run_config)
    assert run.success
    assert {e.partition for e in run.asset_materializations_for_node("source_images")} == {"tiles"}
