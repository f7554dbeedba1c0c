"""The production instance at work: deploy/dagster.yaml on a real PostgreSQL server, a real daemon, and a
30-clip backfill launched through the run queue (one asset backfill per provider) against the simulator.

Needs Debian's PostgreSQL (``make sysdeps``); without it the test fails, it is not skipped.
Prints the wall time and the peak concurrent runs per provider (the figures the README quotes).
"""

from __future__ import annotations

import shutil
import time

import dagster as dg
import pytest
from dagster._core.events import DagsterEventType

from seedance_pipeline.clip.probe import probe_video
from seedance_pipeline.core import settings
from seedance_pipeline.lineage.names import CLIPS_KEY, PROVIDER_TAG
from seedance_pipeline.simulator.config import ProviderSimConfig, SimConfig
from seedance_pipeline.simulator.server import SimulatorServer
from seedance_pipeline.storage.resource import SeedanceStorage
from seedance_pipeline_tests.backfill_harness import Catalog, Figures, make_catalog, peak_overlap, run_backfill
from seedance_pipeline_tests.test_deploy_config import DEPLOY_YAML, RUNS_PER_PROVIDER

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

# Every provider goes to the simulator below over loopback (SEEDANCE_SIMULATOR_URL); RunPod takes images as
# URLs only, which the simulator hosts. 2 providers x 3 prompts x 5 images: 30 clips in 6 runs (one per prompt).
ROUTED = ["novita", "runpod"]
CATALOG = make_catalog(ROUTED, prompts_per_provider=3, images=5)
LATENCY_S = 1.0
IN_RUN_CAP = 1  # SEEDANCE_MAX_IN_FLIGHT_<P>: tasks in flight per provider inside one run


def _materialized_clips(instance: dg.DagsterInstance) -> dict[str, dg.AssetMaterialization]:
    records = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=CLIPS_KEY), limit=1000).records
    return {r.asset_materialization.partition: r.asset_materialization for r in records}


def assert_backfill_outcome(
    instance: dg.DagsterInstance, storage: SeedanceStorage, catalog: Catalog, figures: Figures
) -> None:
    """What both instances must show: every clip stored and recorded, per-provider limits kept."""
    assert set(figures.backfill_status.values()) == {"COMPLETED_SUCCESS"}, figures.backfill_status
    for prov, runs in figures.runs.items():
        assert runs and all(r.status == dg.DagsterRunStatus.SUCCESS for r in runs), (prov, [r.status for r in runs])
        assert {r.tags.get(PROVIDER_TAG) for r in runs} == {prov}
        # More runs than the limit, so the queue had something to hold back.
        assert len(runs) > RUNS_PER_PROVIDER, (prov, len(runs))
        assert figures.peak_from_records[prov] <= RUNS_PER_PROVIDER, figures.peak_from_records
        assert figures.peak_sampled[prov] <= RUNS_PER_PROVIDER, figures.peak_sampled

    clips = _materialized_clips(instance)
    assert set(clips) == set(catalog.clips), set(catalog.clips) ^ set(clips)
    run_provider = {r.run_id: p for p, runs in figures.runs.items() for r in runs}
    for key, mat in clips.items():
        assert mat.metadata["provider"].value == catalog.clips[key], key
        assert mat.metadata["outcome"].value == "generated", key
        image, prompt = key.split("|")
        path = storage.clip_path(prompt, image)
        with storage.fs.open(path, "rb") as fh:
            probe = probe_video(fh)
        assert probe.decoded_to_end and abs(probe.duration_s - 4.0) < 0.1, (key, probe)
    # Each clip was made by a run tagged with its own provider.
    for record in instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=CLIPS_KEY), limit=1000).records:
        assert run_provider[record.run_id] == catalog.clips[record.asset_materialization.partition]
    failures = [
        r
        for p in figures.runs
        for run in figures.runs[p]
        for r in instance.get_records_for_run(run.run_id, of_type=DagsterEventType.STEP_FAILURE).records
    ]
    assert not failures


@pytest.fixture
def simulator():
    timing = ProviderSimConfig(latency_min_s=LATENCY_S, latency_max_s=LATENCY_S)
    with SimulatorServer(
        SimConfig(providers={p: timing for p in ("runpod", "wavespeed", "jiekou", "novita", "vibedream")})
    ) as server:
        yield server


def test_backfill_through_the_queue_on_postgres(tmp_path, pg_server, simulator, monkeypatch):
    t_start = time.monotonic()
    db = pg_server.create_database("backfill")
    pg_env = pg_server.dagster_env(db)
    for name, value in pg_env.items():
        monkeypatch.setenv(name, value)  # deploy/dagster.yaml reads them in this process too
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(DEPLOY_YAML, home / "dagster.yaml")  # the production file, unchanged
    storage = SeedanceStorage(url=str(tmp_path / "storage"))

    with dg.DagsterInstance.from_config(str(home)) as instance:
        caps = {settings.max_in_flight(p).name: str(IN_RUN_CAP) for p in ROUTED}
        figures = run_backfill(
            instance=instance,
            home=home,
            storage=storage,
            catalog=CATALOG,
            sim_url=simulator.base_url,
            env_extra={**pg_env, **caps},
            log_path=tmp_path / "daemon.log",
        )
        print(
            "\n"
            + figures.line(f"Postgres backfill of {len(CATALOG.clips)} clips")
            + f"; test total {time.monotonic() - t_start:.1f} s"
        )
        assert_backfill_outcome(instance, storage, CATALOG, figures)
        assert not figures.storage_errors, figures.storage_errors[:10]

    # Submitted exactly once per clip; at the provider, never more tasks at once than the arithmetic allows:
    # runs per provider (tag limit) x tasks in flight per run (in-run cap).
    submits = {p: counts.get("submit", 0) for p, counts in simulator.sim.stats()["requests"].items()}
    assert {p: submits.get(p, 0) for p in ROUTED} == {
        p: sum(1 for prov in CATALOG.clips.values() if prov == p) for p in ROUTED
    }
    tasks = simulator.sim.task_objects()
    provider_peak = {p: peak_overlap([(t.created_mono, t.done_mono) for t in tasks if t.provider == p]) for p in ROUTED}
    print(f"peak tasks in flight at the provider: {provider_peak} (cap {RUNS_PER_PROVIDER} x {IN_RUN_CAP})")
    assert all(n <= RUNS_PER_PROVIDER * IN_RUN_CAP for n in provider_peak.values()), provider_peak

    # The history is in Postgres, not in SQLite files under DAGSTER_HOME.
    assert not list(home.rglob("*.db")), list(home.rglob("*.db"))
    conn = pg_server.connect(db)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT partition FROM event_logs WHERE dagster_event_type = 'ASSET_MATERIALIZATION' "
                "AND asset_key = %s",
                (CLIPS_KEY.to_string(),),
            )
            rows = [r[0] for r in cur.fetchall()]
            cur.execute(
                "SELECT count(*) FROM event_logs WHERE dagster_event_type IN "
                "('STEP_FAILURE', 'RUN_FAILURE', 'ENGINE_EVENT') AND event LIKE %s",
                ("%database is locked%",),
            )
            locked = cur.fetchone()[0]
            cur.execute("SELECT count(*) FROM runs")
            runs = cur.fetchone()[0]
    finally:
        conn.close()
    assert sorted(rows) == sorted(CATALOG.clips), "clip materializations in Postgres' event_logs"
    assert locked == 0
    assert runs == sum(len(r) for r in figures.runs.values()) + 2  # + the two in-process source runs
