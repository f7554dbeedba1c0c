"""The asset graph materialized in-process against the simulator over real loopback HTTP."""

from __future__ import annotations

import functools
import json

import dagster as dg
import pandas as pd
import pytest
from dagster._core.definitions.data_version import StaleStatus
from dagster._utils.test.data_versions import get_stale_status_resolver

from seedance_pipeline.cli import runner
from seedance_pipeline.cli.demo_data import write_demo_data
from seedance_pipeline.cli.runner import run_pipeline
from seedance_pipeline.clip import checks as clip_checks
from seedance_pipeline.clip.probe import probe_video
from seedance_pipeline.definitions import ASSETS, CHECKS
from seedance_pipeline.ledger.budget import SpendPolicy
from seedance_pipeline_tests.conftest import put, requests_total

CLIPS = dg.AssetKey("clips")
DEMO_CLIPS = {"mountains|dusk-dolly", "tiles|dusk-dolly", "tower|dusk-dolly", "mountains|quick-pan", "tower|quick-pan"}


@pytest.fixture
def demo(storage):
    write_demo_data(storage)
    return storage


def clip_partitions(instance) -> set[str]:
    return {r.partition_key for r in instance.fetch_materializations(CLIPS, limit=1000).records}


def test_run_materializes_every_asset(demo, providers, instance, sim):
    report = run_pipeline(instance, demo, providers)
    assert report.ok, report.failures
    assert {r.clip for r in report.clips} == DEMO_CLIPS  # tiles|quick-pan is not targeted
    assert all(r.simulated and r.outcome == "generated" for r in report.clips)
    for row in report.clips:
        image, prompt = row.clip.split("|")
        probe = probe_video(demo.clip_path(prompt, image))
        assert probe.decoded_to_end and probe.fps == 24
        sidecar = json.loads(demo.read_bytes(demo.sidecar_path(prompt, image)))
        assert sidecar["provider"] == row.provider and sidecar["simulated"] is True
        assert (probe.width, probe.height) == (sidecar["request"]["width"], sidecar["request"]["height"])
    # the dusk-dolly prompt asks for audio, quick-pan does not
    assert probe_video(demo.clip_path("dusk-dolly", "tower")).has_audio
    assert not probe_video(demo.clip_path("quick-pan", "tower")).has_audio
    # one submit per clip reached the providers, and every check passed, the content checks too
    assert requests_total(sim, "submit") == len(DEMO_CLIPS)
    for name in clip_checks.CHECKS:
        history = instance.event_log_storage.get_asset_check_execution_history(dg.AssetCheckKey(CLIPS, name), limit=50)
        assert {str(h.event.dagster_event.event_specific_data.partition) for h in history} == DEMO_CLIPS
        assert all(h.event.dagster_event.event_specific_data.passed for h in history)
    # the cost report has every attempt
    day = report.cost_report.rsplit("/", 2)[-2]
    df = pd.read_parquet(demo.path("reports", day, "cost_report.parquet"))
    assert sorted(df["prompt"] + "|" + df["image"]) == sorted(
        f"{c.split('|')[1]}|{c.split('|')[0]}" for c in DEMO_CLIPS
    )
    assert (df["outcome"] == "succeeded").all()
    runpod = df[df["provider"] == "runpod"]
    assert runpod["reported_usd"].tolist() == pytest.approx(runpod["estimated_usd"].tolist())  # documented price


def planned_clips(instance, run_id: str) -> list[str]:
    """The clip partitions Dagster was told a run would materialize (one planned event each)."""
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED).records
    return sorted(
        str(r.event_log_entry.dagster_event.event_specific_data.partition)
        for r in records
        if r.event_log_entry.dagster_event.event_specific_data.asset_key == CLIPS
    )


def test_second_run_sends_nothing(demo, providers, instance, sim):
    first = run_pipeline(instance, demo, providers)
    # One run around the five (planning/cover.py): it covers the untargeted tiles|quick-pan too, within SLACK.
    # The images are recorded without a run (cli/runner.py register_images); everything else is a run.
    assert set(first.runs) == {"prompts", "clips", "galleries", "cost_report"}
    images = instance.fetch_materializations(dg.AssetKey("source_images"), limit=100).records
    assert sorted(r.partition_key for r in images) == sorted({c.split("|")[0] for c in DEMO_CLIPS})
    assert {r.run_id for r in images} == {""}
    assert planned_clips(instance, first.runs["clips"]) == sorted({*DEMO_CLIPS, "tiles|quick-pan"})
    before = requests_total(sim)
    report = run_pipeline(instance, demo, providers)
    assert report.ok and report.clips == []
    assert requests_total(sim) == before
    # Nothing wanted and no attempt recorded since the report was built: no run at all, and the report stays.
    assert report.runs == {} and report.cost_report == first.cost_report
    assert demo.exists(demo.path("reports", first.cost_report.rsplit("/", 2)[-2], "cost_report.parquet"))


def test_the_cost_report_is_built_again_when_a_record_changes_or_its_file_is_gone(demo, providers, instance, sim):
    first = run_pipeline(instance, demo, providers)
    day = first.cost_report.rsplit("/", 2)[-2]
    [record] = [p for p in demo.fs.find(demo.path("tasks", "days", day)) if p.endswith(".json")][:1]
    demo.write_bytes(record, demo.read_bytes(record))  # rewritten, as the journal rewrites a record: a new mtime
    assert run_pipeline(instance, demo, providers).runs.keys() == {"cost_report"}
    demo.fs.rm(demo.path("reports", day, "cost_report.parquet"))
    assert run_pipeline(instance, demo, providers).runs.keys() == {"cost_report"}
    assert demo.exists(demo.path("reports", day, "cost_report.parquet"))
    assert run_pipeline(instance, demo, providers).runs == {}


def test_prompt_edit_marks_and_remakes_exactly_its_clips(demo, providers, instance, sim, monkeypatch):
    # No slack: every clips run covers only the partitions it produces, however many runs that takes.
    monkeypatch.setattr(runner, "rectangles", functools.partial(runner.rectangles, slack=0))
    first = run_pipeline(instance, demo, providers)
    assert sorted(first.runs) == [
        "clips",
        "clips 2",
        "clips 3",
        "cost_report",
        "galleries",
        "prompts",
    ]
    assert sorted(p for run in ("clips", "clips 2", "clips 3") for p in planned_clips(instance, first.runs[run])) == (
        sorted(DEMO_CLIPS)
    )
    path = demo.path("prompts", "quick-pan.yaml")
    put(demo, "prompts/quick-pan.yaml", demo.read_bytes(path).decode().replace("Gentle pan", "Brisk pan"))
    # After the prompts refresh, exactly quick-pan's clips are stale.
    from seedance_pipeline.planning.refresh import plan_refresh

    plan = plan_refresh(instance, demo)
    assert list(plan.changed_prompts) == ["quick-pan"] and not plan.changed_images
    defs_assets = [*ASSETS, *CHECKS]
    dg.materialize(
        defs_assets,
        selection=["prompts"],
        partition_key="quick-pan",
        instance=instance,
        resources={"storage": demo, "providers": providers, "spend": SpendPolicy()},
    )
    resolver = get_stale_status_resolver(instance, defs_assets)
    status = {c: resolver.get_status(CLIPS, c) for c in DEMO_CLIPS}
    assert {c for c, s in status.items() if s == StaleStatus.STALE} == {"mountains|quick-pan", "tower|quick-pan"}
    submits = requests_total(sim, "submit")
    report = run_pipeline(instance, demo, providers)
    assert {r.clip for r in report.clips} == {"mountains|quick-pan", "tower|quick-pan"}
    assert requests_total(sim, "submit") == submits + 2
    # Two runs (tiles|quick-pan lies between them, untargeted): each covered its partition, nothing around it.
    assert sorted(report.runs) == ["clips", "clips 2", "cost_report", "galleries"]  # prompts: refreshed above
    assert planned_clips(instance, report.runs["clips"]) + planned_clips(instance, report.runs["clips 2"]) == [
        "mountains|quick-pan",
        "tower|quick-pan",
    ]


def test_comment_only_edit_changes_nothing(demo, providers, instance, sim):
    run_pipeline(instance, demo, providers)
    path = demo.path("prompts", "dusk-dolly.yaml")
    put(demo, "prompts/dusk-dolly.yaml", "# reviewed by the art director\n" + demo.read_bytes(path).decode())
    prompt_events = len(instance.fetch_materializations(dg.AssetKey("prompts"), limit=100).records)
    before = requests_total(sim)
    report = run_pipeline(instance, demo, providers)
    assert report.ok and report.clips == []
    assert requests_total(sim) == before
    assert len(instance.fetch_materializations(dg.AssetKey("prompts"), limit=100).records) == prompt_events


def test_malformed_prompt_leaves_everything_else_untouched(demo, providers, instance, sim):
    run_pipeline(instance, demo, providers)
    stored = {p: demo.read_bytes(p) for p in demo.fs.find(demo.path("clips"))}
    put(demo, "prompts/broken.yaml", "text: hello\nduration: 5\ncolour: blue\n")
    before = requests_total(sim)
    report = run_pipeline(instance, demo, providers)
    assert any("prompts/broken.yaml" in f and "colour" in f and "unknown field" in f for f in report.failures), (
        report.failures
    )
    assert requests_total(sim) == before
    assert {p: demo.read_bytes(p) for p in demo.fs.find(demo.path("clips"))} == stored
    assert "broken" not in {
        r.partition_key for r in instance.fetch_materializations(dg.AssetKey("prompts"), limit=100).records
    }


def test_failed_clips_do_not_lose_the_others(storage, providers, instance, sim):
    put(storage, "images/a.png", conftest_png((800, 450)))
    put(storage, "images/b.png", conftest_png((450, 800), (20, 90, 200)))
    put(storage, "prompts/ok.yaml", "text: a calm scene\nprovider: novita\nduration: 4\nresolution: 480p\n")
    put(
        storage,
        "prompts/bad.yaml",
        "text: a scene [sim:moderation]\nprovider: vibedream\nduration: 4\nresolution: 480p\nseed: 5\n",
    )
    report = run_pipeline(instance, storage, providers)
    assert {r.clip for r in report.clips} == {"a|ok", "b|ok"}
    assert len(report.failures) == 2 and all("moderation" in f.lower() for f in report.failures), report.failures
    assert clip_partitions(instance) == {"a|ok", "b|ok"}


def conftest_png(size, color=(200, 120, 40)):
    from seedance_pipeline_tests.conftest import png

    return png(size, color)


def test_every_clip_materialization_carries_its_cost_as_a_number(demo, providers, instance, sim):
    """``cost_usd`` on every clip event is a float (the provider's charge where reported, else the estimate);
    ``reported_cost_usd`` appears only where a provider reported one, and then as a float too."""
    assert run_pipeline(instance, demo, providers).ok
    records = instance.fetch_materializations(CLIPS, limit=1000).records
    assert {r.partition_key for r in records} == DEMO_CLIPS
    reported = 0
    for r in records:
        meta = r.asset_materialization.metadata
        assert isinstance(meta["cost_usd"], dg.FloatMetadataValue) and meta["cost_usd"].value > 0
        if "reported_cost_usd" in meta:
            reported += 1
            assert isinstance(meta["reported_cost_usd"], dg.FloatMetadataValue)
            assert meta["cost_usd"].value == meta["reported_cost_usd"].value
        else:
            assert meta["cost_usd"].value == meta["estimated_cost_usd"].value
    print(f"\n{reported} of {len(records)} clips with a provider-reported cost")


def test_the_cost_report_gives_its_tables_with_a_schema_and_its_row_count(demo, providers, instance, sim):
    report = run_pipeline(instance, demo, providers)
    assert report.ok
    [record] = instance.fetch_materializations(dg.AssetKey("cost_report"), limit=10).records
    meta = record.asset_materialization.metadata
    day = report.cost_report.rsplit("/", 2)[-2]
    df = pd.read_parquet(demo.path("reports", day, "cost_report.parquet"))
    assert meta["dagster/row_count"].value == len(df) == 5
    for name, key in (("per_provider", "provider"), ("per_prompt", "prompt")):
        table = meta[name]
        assert isinstance(table, dg.TableMetadataValue)
        columns = {c.name: c.type for c in table.schema.columns}
        assert columns == {
            key: "string",
            "attempts": "int",
            "clips_stored": "int",
            "charged_usd": "float",
            "on_failures_usd": "float",
            "on_rejected_usd": "float",
            "saved_by_reuse_usd": "float",
        }
        rows = {r.data[key]: r.data for r in table.records}
        assert rows.keys() == set(df[key])
        for value, row in rows.items():
            assert row["attempts"] == (df[key] == value).sum()
            assert row["charged_usd"] == pytest.approx(df.loc[df[key] == value, "charged_usd"].sum(), abs=1e-4)
