"""Backfill exactly what changed: `backfill --changed` plans, forecasts and launches Dagster backfills that the
real daemon runs; unchanged clips are not touched; the forecast matches what the providers report."""

from __future__ import annotations

import os

import dagster as dg
import pandas as pd
import pytest
from click.testing import CliRunner
from dagster._core.execution.backfill import BulkActionStatus

from seedance_pipeline.cli import main
from seedance_pipeline.cli.demo_data import write_demo_data
from seedance_pipeline.ledger.store import TaskStore
from seedance_pipeline.lineage.names import PROVIDER_TAG
from seedance_pipeline.storage.resource import SeedanceStorage
from seedance_pipeline_tests.conftest import put, requests_total
from seedance_pipeline_tests.daemon import DagsterDaemon

pytestmark = pytest.mark.slow

CLIPS = dg.AssetKey("clips")
QUICK_PAN = {"mountains|quick-pan", "tower|quick-pan"}
DUSK = {"mountains|dusk-dolly", "tiles|dusk-dolly", "tower|dusk-dolly"}


@pytest.fixture
def env(tmp_path, monkeypatch, sim) -> dict[str, str]:
    """A persistent SQLite Dagster home and local storage, providers routed to the test's simulator."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    values = {
        "DAGSTER_HOME": str(home),
        "SEEDANCE_STORAGE_URL": str(tmp_path / "storage"),
        "SEEDANCE_SIMULATOR_URL": sim.base_url,
    }
    for name in list(os.environ):
        if name.endswith("_API_KEY") or (name.startswith("SEEDANCE_") and name not in values):
            monkeypatch.delenv(name)
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return {**os.environ, **values}


def cli(*args: str) -> str:
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def materialized(instance: dg.DagsterInstance) -> dict[str, int]:
    counts: dict[str, int] = {}
    for record in instance.fetch_materializations(CLIPS, limit=1000).records:
        counts[record.partition_key] = counts.get(record.partition_key, 0) + 1
    return counts


def test_prompt_edit_backfills_exactly_its_clips_through_the_daemon(env, sim, tmp_path):
    storage = SeedanceStorage(url=env["SEEDANCE_STORAGE_URL"])
    write_demo_data(storage)
    cli("run")
    assert requests_total(sim, "submit") == 5
    path = storage.path("prompts", "quick-pan.yaml")
    put(storage, "prompts/quick-pan.yaml", storage.read_bytes(path).decode().replace("Gentle pan", "Brisk pan"))

    dry = cli("backfill", "--changed", "--dry-run")
    listed = {line.split()[0] for line in dry.splitlines() if "|" in line.split(" ")[0]}
    assert listed == QUICK_PAN, dry
    assert "0.1920" in dry.split("total", 1)[1]  # 2 x 4 s at RunPod's documented $0.024/s
    instance = dg.DagsterInstance.get()
    assert instance.get_backfills() == [] and requests_total(sim, "submit") == 5

    launched = cli("backfill", "--changed")
    [backfill] = instance.get_backfills()
    assert backfill.backfill_id in launched and backfill.tags[PROVIDER_TAG] == "runpod"
    targeted = {str(p.partition_key) for p in backfill.asset_backfill_data.target_subset.iterate_asset_partitions()}
    assert targeted == QUICK_PAN

    with DagsterDaemon(env, tmp_path / "daemon.log") as daemon:
        daemon.wait_for(
            lambda: instance.get_backfill(backfill.backfill_id).status not in (BulkActionStatus.REQUESTED,),
            "the backfill to finish",
        )
    assert instance.get_backfill(backfill.backfill_id).status == BulkActionStatus.COMPLETED_SUCCESS
    runs = instance.get_runs(dg.RunsFilter(tags={"dagster/backfill": backfill.backfill_id}))
    assert runs and all(r.tags[PROVIDER_TAG] == "runpod" and r.status == dg.DagsterRunStatus.SUCCESS for r in runs)

    counts = materialized(instance)
    assert {p: counts[p] for p in QUICK_PAN} == dict.fromkeys(QUICK_PAN, 2)  # remade once
    assert {p: counts[p] for p in DUSK} == dict.fromkeys(DUSK, 1)  # not touched
    assert requests_total(sim, "submit") == 7
    # the clips the edit replaced were paid for: they are kept, not overwritten
    for clip in QUICK_PAN:
        image = clip.split("|")[0]
        kept = storage.fs.glob(storage.path("clips", "quick-pan", f"{image}.versions", "*.mp4"))
        assert len(kept) == 1
    # the forecast matches what RunPod reported, to the cent
    attempts = [r for r in TaskStore(storage).day_records(_today()) if r.run_id in {run.run_id for run in runs}]
    assert len(attempts) == 2 and all(a.state == "succeeded" for a in attempts)
    assert round(sum(a.reported_cost_usd for a in attempts), 2) == 0.19


def _today() -> str:
    from seedance_pipeline.lineage.partitions import today_utc

    return today_utc()


def test_nothing_changed_means_nothing_to_backfill(env, sim):
    storage = SeedanceStorage(url=env["SEEDANCE_STORAGE_URL"])
    write_demo_data(storage)
    cli("run")
    path = storage.path("prompts", "dusk-dolly.yaml")
    put(storage, "prompts/dusk-dolly.yaml", "# a comment changes nothing\n" + storage.read_bytes(path).decode())
    out = cli("backfill", "--changed")
    assert "nothing to backfill" in out
    assert dg.DagsterInstance.get().get_backfills() == []


def test_forecast_matches_the_cost_report_to_the_cent(env, sim):
    storage = SeedanceStorage(url=env["SEEDANCE_STORAGE_URL"])
    write_demo_data(storage)
    forecast = cli("forecast", "--no-list")
    rows = {
        line.split()[0]: line.split()
        for line in forecast.splitlines()
        if line.split() and line.split()[0] in ("runpod", "novita")
    }
    assert int(rows["runpod"][1]) == 2 and int(rows["novita"][1]) == 3
    cli("run")
    df = pd.read_parquet(storage.path("reports", _today(), "cost_report.parquet"))
    charged = df.groupby("provider")["charged_usd"].sum()
    # RunPod's price is documented and it reports its charge: forecast == report to the cent.
    assert round(charged["runpod"], 2) == round(float(rows["runpod"][4]), 2)
    # Novita's price is an assumption (it reports none): the report carries our estimate, so they agree too.
    assert round(charged["novita"], 2) == round(float(rows["novita"][4]), 2)
    assert requests_total(sim, "submit") == 5 and rows["runpod"][2] == rows["novita"][2] == "0"  # none reused


def test_max_usd_refuses_to_launch(env, sim):
    storage = SeedanceStorage(url=env["SEEDANCE_STORAGE_URL"])
    write_demo_data(storage)
    cli("run")
    path = storage.path("prompts", "dusk-dolly.yaml")
    put(storage, "prompts/dusk-dolly.yaml", storage.read_bytes(path).decode().replace("dusk", "dawn"))
    result = CliRunner().invoke(main, ["backfill", "--changed", "--max-usd", "0.5"])
    assert result.exit_code == 2 and "over --max-usd" in result.output
    assert dg.DagsterInstance.get().get_backfills() == []
