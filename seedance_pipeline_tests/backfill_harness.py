"""A clip backfill through Dagster's own queue: catalog, daemon subprocess, per-provider backfills, figures.

Used by test_postgres.py (deploy/dagster.yaml on a real PostgreSQL server) and for the same backfill on the
embedded SQLite default (``python -m seedance_pipeline_tests.backfill_harness``). The flow:

1. write a catalog (PNG images + prompt files, each prompt naming one provider) into a storage folder;
2. register the partitions and materialize the sources in-process on the instance;
3. start ``dagster-daemon run -w workspace.yaml`` in its own process group (the storage and pending-tasks
   sensors are stopped first, so every clips run comes from the backfills);
4. plan the missing clips and launch ONE asset backfill per provider, tagged ``seedance/provider=<p>``
   (``seedance_pipeline.planning.backfill.plan`` + ``launch``: what ``seedance-pipeline backfill --missing`` does);
5. poll (no blind sleeps) until every backfill is finished, sampling runs in progress per provider;
6. figures: wall time, runs per provider, peak concurrent runs per provider (from the run records'
   start/end times and from the samples), storage errors in the daemon output.
"""

from __future__ import annotations

import os
import re
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
from dagster._core.execution.backfill import BulkActionStatus
from dagster._core.storage.dagster_run import IN_PROGRESS_RUN_STATUSES, RunsFilter
from dagster._core.storage.tags import BACKFILL_ID_TAG

from seedance_pipeline.core import settings
from seedance_pipeline.definitions import build_definitions
from seedance_pipeline.event_logs.instance_config import embedded_instance_config
from seedance_pipeline.lineage.names import PROVIDER_TAG
from seedance_pipeline.lineage.partitions import IMAGES, PROMPTS, clip_key, range_tags
from seedance_pipeline.planning import backfill
from seedance_pipeline.planning.refresh import plan_refresh
from seedance_pipeline.providers import ADAPTER_CLASSES, PROVIDERS
from seedance_pipeline.providers.resource import SeedanceProviders
from seedance_pipeline.storage.resource import SeedanceStorage
from seedance_pipeline_tests.conftest import png
from seedance_pipeline_tests.dagster_dev import DagsterDev, _default_signals

REPO = Path(__file__).resolve().parents[1]
LOCATION = "seedance_pipeline"
SENSORS = ("storage_sensor", "pending_tasks_sensor")
STORAGE_ERRORS = re.compile(
    r"database is locked|OperationalError|DatabaseError|InterfaceError|psycopg2\.|"
    r"sqlalchemy\.exc|unable to open database|could not connect to server",
    re.I,
)
FINISHED_BACKFILL = {
    BulkActionStatus.COMPLETED,
    BulkActionStatus.COMPLETED_SUCCESS,
    BulkActionStatus.COMPLETED_FAILED,
    BulkActionStatus.FAILED,
    BulkActionStatus.CANCELED,
}

PROMPT_TEMPLATE = """\
text: "Backfill {name}: a slow push-in, soft light."
images: ["*"]
provider: {provider}
duration: 4
resolution: 480p
aspect_ratio: "16:9"
generate_audio: false
seed: {seed}
"""


@dataclass(frozen=True)
class Catalog:
    images: list[str]
    prompts: dict[str, str]  # prompt key -> provider

    @property
    def clips(self) -> dict[str, str]:
        """Every targeted clip partition key -> its provider."""
        return {str(clip_key(i, p)): prov for p, prov in self.prompts.items() for i in self.images}

    def by_provider(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = defaultdict(list)
        for key, prov in sorted(self.clips.items()):
            out[prov].append(key)
        return dict(out)


def make_catalog(providers: list[str], prompts_per_provider: int, images: int) -> Catalog:
    # Prompt keys interleave providers (a-jiekou, b-novita, ...), so no provider's prompts are all adjacent.
    prompts = {}
    for n in range(prompts_per_provider):
        for prov in providers:
            prompts[f"p{n}-{prov}"] = prov
    return Catalog(images=[f"img{n:02d}" for n in range(images)], prompts=prompts)


def write_catalog(storage: SeedanceStorage, catalog: Catalog) -> None:
    for n, image in enumerate(catalog.images):
        storage.write_bytes(storage.path("images", f"{image}.png"), png((640, 360), (40 + 30 * n % 200, 120, 90)))
    for n, (prompt, prov) in enumerate(catalog.prompts.items()):
        storage.write_bytes(
            storage.path("prompts", f"{prompt}.yaml"),
            PROMPT_TEMPLATE.format(name=prompt, provider=prov, seed=n + 1).encode(),
        )


def materialize_sources(instance: dg.DagsterInstance, storage: SeedanceStorage) -> None:
    """Partitions + source materializations in-process, exactly as ``seedance-pipeline run`` starts."""
    defs = build_definitions(storage)
    plan = plan_refresh(instance, storage)
    assert not plan.rejected, plan.rejected
    instance.add_dynamic_partitions(IMAGES, plan.new_images)
    instance.add_dynamic_partitions(PROMPTS, plan.new_prompts)
    for asset, keys in (("source_images", plan.images), ("prompts", plan.prompts)):
        result = defs.resolve_job_def(f"{asset}_job").execute_in_process(
            instance=instance,
            tags=range_tags(keys[0], keys[-1]),
            raise_on_error=False,
            run_config={
                "ops": {asset: {"config": {"only_changed": True}}},
                "loggers": {"console": {"config": {"log_level": "CRITICAL"}}},
            },
        )
        assert result.success, f"{asset} materialization failed"


def launch_provider_backfills(
    instance: dg.DagsterInstance, storage: SeedanceStorage, providers: SeedanceProviders, catalog: Catalog
) -> dict[str, str]:
    """``seedance-pipeline backfill --missing``'s path: plan every missing clip, then one asset backfill of the
    clips asset per provider, tagged ``seedance/provider``; returns provider -> backfill id."""
    result = backfill.plan(instance, storage, providers, mode="missing")
    assert not result.failures, result.failures
    assert {c.partition: c.provider for c in result.clips} == catalog.clips
    launched = backfill.launch(instance, build_definitions(storage, providers), result, trigger="test-postgres")
    return {provider: backfill_id for provider, backfill_id, _ in launched}


def stop_sensors(instance: dg.DagsterInstance) -> None:
    """Store STOPPED states for the code location's sensors (they default to RUNNING), as the UI's toggle does."""
    from dagster._core.remote_origin import InProcessCodeLocationOrigin
    from dagster._core.test_utils import InProcessTestWorkspaceLoadTarget
    from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
    from dagster._core.workspace.context import WorkspaceProcessContext

    # The same location name as workspace.yaml: sensor states are keyed by (location, repository, sensor).
    origin = InProcessCodeLocationOrigin(
        LoadableTargetOrigin(
            executable_path=sys.executable, module_name="seedance_pipeline.definitions", working_directory=str(REPO)
        ),
        location_name=LOCATION,
    )
    with WorkspaceProcessContext(instance, InProcessTestWorkspaceLoadTarget(origin)) as context:
        repo = context.create_request_context().get_code_location(LOCATION).get_repository("__repository__")
        for name in SENSORS:
            sensor = repo.get_sensor(name)
            instance.stop_sensor(sensor.get_remote_origin_id(), sensor.selector_id, sensor)


class DagsterDaemon(DagsterDev):
    """``dagster-daemon run -w workspace.yaml`` in its own process group (stopped like ``dagster dev``)."""

    def start(self) -> None:
        import subprocess

        exe = Path(sys.executable).with_name("dagster-daemon")
        cmd = [str(exe) if exe.exists() else "dagster-daemon", "run", "-w", str(self.workspace)]
        self._log = open(self.log_path, "wb")  # noqa: SIM115 (open while the daemon runs; closed in stop())
        self.proc = subprocess.Popen(
            cmd,
            cwd=self.cwd,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_default_signals,
        )

    def wait_ready(self, instance: dg.DagsterInstance, timeout_s: float = 90.0) -> float:
        """Until the backfill and run-queue daemons have sent a heartbeat since this start."""
        start, since = time.monotonic(), time.time()
        wanted = {"BACKFILL", "QUEUED_RUN_COORDINATOR"}
        beats = {}
        while time.monotonic() - start < timeout_s:
            if self.proc.poll() is not None:
                raise AssertionError(f"dagster-daemon exited with {self.proc.returncode}:\n{self.tail()}")
            beats = {k: v.timestamp for k, v in instance.get_daemon_heartbeats().items()}
            if all(beats.get(d, 0) >= since for d in wanted):
                return time.monotonic() - start
            time.sleep(0.25)
        raise AssertionError(f"no heartbeat from {wanted} within {timeout_s:.0f} s ({beats}):\n{self.tail()}")


def daemon_env(home: Path, storage_url: str, sim_url: str, extra: dict[str, str]) -> dict[str, str]:
    """The code location's environment: storage, and every provider on the test's simulator (no real API)."""
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        settings.STORAGE_URL.name: storage_url,
        settings.SIMULATOR_URL.name: sim_url,
    }
    for prov in PROVIDERS:
        env.pop(ADAPTER_CLASSES[prov].env_key, None)
        env.pop(settings.base_url(prov).name, None)
        env.pop(settings.max_in_flight(prov).name, None)
    env.pop(settings.S3_ENDPOINT_URL.name, None)
    env.pop(settings.EXPECTED_LATENCY_S.name, None)
    return {**env, **extra}


@dataclass
class Figures:
    wall_s: float = 0.0
    runs: dict[str, list[dg.DagsterRun]] = field(default_factory=dict)  # provider -> clips runs
    peak_from_records: dict[str, int] = field(default_factory=dict)
    peak_sampled: dict[str, int] = field(default_factory=dict)
    backfill_status: dict[str, str] = field(default_factory=dict)
    storage_errors: list[str] = field(default_factory=list)

    def line(self, label: str) -> str:
        runs = {p: len(r) for p, r in sorted(self.runs.items())}
        return (
            f"{label}: wall {self.wall_s:.1f} s; runs per provider {runs}; peak concurrent runs per provider "
            f"(records) {dict(sorted(self.peak_from_records.items()))}, (sampled) "
            f"{dict(sorted(self.peak_sampled.items()))}; backfills {self.backfill_status}; "
            f"storage errors {len(self.storage_errors)}"
        )


def peak_overlap(intervals: list[tuple[float, float]]) -> int:
    """Most intervals open at one instant (an end at t closes before a start at t opens)."""
    points = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals], key=lambda x: (x[0], x[1]))
    peak = cur = 0
    for _, d in points:
        cur += d
        peak = max(peak, cur)
    return peak


def wait_for_backfills(
    instance: dg.DagsterInstance, ids: dict[str, str], daemon: DagsterDaemon, figures: Figures, timeout_s: float
) -> None:
    start = time.monotonic()
    sampled: dict[str, int] = defaultdict(int)
    statuses = {}
    while time.monotonic() - start < timeout_s:
        if daemon.proc.poll() is not None:
            raise AssertionError(f"dagster-daemon died ({daemon.proc.returncode}):\n{daemon.tail()}")
        for prov in ids:
            n = instance.get_runs_count(RunsFilter(statuses=list(IN_PROGRESS_RUN_STATUSES), tags={PROVIDER_TAG: prov}))
            sampled[prov] = max(sampled[prov], n)
        statuses = {p: instance.get_backfill(b).status for p, b in ids.items()}
        if all(s in FINISHED_BACKFILL for s in statuses.values()):
            break
        time.sleep(0.5)
    else:
        raise AssertionError(f"backfills not finished after {timeout_s:.0f} s: {statuses}\n{daemon.tail()}")
    figures.peak_sampled = dict(sampled)
    figures.backfill_status = {p: s.value for p, s in statuses.items()}


def collect_figures(instance: dg.DagsterInstance, ids: dict[str, str], figures: Figures) -> None:
    for prov, backfill_id in ids.items():
        records = instance.get_run_records(RunsFilter(tags={BACKFILL_ID_TAG: backfill_id}))
        figures.runs[prov] = [r.dagster_run for r in records]
        intervals = [(r.start_time, r.end_time) for r in records if r.start_time and r.end_time]
        figures.peak_from_records[prov] = peak_overlap(intervals)


def scan_storage_errors(*texts: str) -> list[str]:
    return [line.strip() for text in texts for line in text.splitlines() if STORAGE_ERRORS.search(line)]


def run_backfill(
    *,
    instance: dg.DagsterInstance,
    home: Path,
    storage: SeedanceStorage,
    catalog: Catalog,
    sim_url: str,
    env_extra: dict[str, str],
    log_path: Path,
    timeout_s: float = 300.0,
) -> Figures:
    """Steps 1-6 of the module docstring on ``instance`` (whose config is ``home``/dagster.yaml)."""
    write_catalog(storage, catalog)
    materialize_sources(instance, storage)
    stop_sensors(instance)
    figures = Figures()
    daemon = DagsterDaemon(REPO / "workspace.yaml", REPO, daemon_env(home, storage.url, sim_url, env_extra), log_path)
    providers = SeedanceProviders(simulator_url=sim_url)  # what the code location resolves from its environment
    try:
        daemon.start()
        daemon.wait_ready(instance)
        t0 = time.monotonic()
        ids = launch_provider_backfills(instance, storage, providers, catalog)
        wait_for_backfills(instance, ids, daemon, figures, timeout_s)
        figures.wall_s = time.monotonic() - t0
    finally:
        daemon.stop()
    collect_figures(instance, ids, figures)
    figures.storage_errors = scan_storage_errors(log_path.read_text(errors="replace"))
    return figures


def main(argv: list[str] | None = None) -> int:
    """The same backfill on either instance, figures printed: the README's Postgres vs SQLite comparison.

    python -m seedance_pipeline_tests.backfill_harness --instance sqlite     # the embedded default
    python -m seedance_pipeline_tests.backfill_harness --instance postgres   # deploy/dagster.yaml
    """
    import argparse
    import shutil
    import tempfile

    import yaml

    from seedance_pipeline.simulator.config import ProviderSimConfig, SimConfig
    from seedance_pipeline.simulator.server import SimulatorServer
    from seedance_pipeline_tests.pg import PgCluster, find_pg_bin

    parser = argparse.ArgumentParser(description=main.__doc__.splitlines()[0])
    parser.add_argument("--instance", choices=["sqlite", "postgres"], required=True)
    parser.add_argument("--providers", default="novita,runpod")
    parser.add_argument("--prompts-per-provider", type=int, default=3)
    parser.add_argument("--images", type=int, default=5)
    parser.add_argument("--in-run-cap", type=int, default=1)
    parser.add_argument("--latency", type=float, default=1.0)
    args = parser.parse_args(argv)
    catalog = make_catalog(args.providers.split(","), args.prompts_per_provider, args.images)
    root = Path(tempfile.mkdtemp(prefix=f"seedance-backfill-{args.instance}-"))
    home, storage = root / "dagster_home", SeedanceStorage(url=str(root / "storage"))
    home.mkdir()
    deploy = yaml.safe_load((REPO / "deploy" / "dagster.yaml").read_text())
    caps = {settings.max_in_flight(p).name: str(args.in_run_cap) for p in catalog.by_provider()}
    timing = ProviderSimConfig(latency_min_s=args.latency, latency_max_s=args.latency)
    with (
        SimulatorServer(SimConfig(providers={p: timing for p in PROVIDERS})) as sim,
        PgCluster(find_pg_bin()) if args.instance == "postgres" else _nothing() as pg,
    ):
        env_extra = dict(caps)
        if pg is not None:
            env_extra.update(pg.dagster_env(pg.create_database("backfill")))
            os.environ.update(env_extra)
        else:
            for part in ("run_storage", "event_log_storage", "schedule_storage"):
                deploy.pop(part)
            deploy.update(embedded_instance_config(home))  # the embedded default: SQLite files under DAGSTER_HOME
        (home / "dagster.yaml").write_text(yaml.safe_dump(deploy))
        t0 = time.monotonic()
        with dg.DagsterInstance.from_config(str(home)) as instance:
            figures = run_backfill(
                instance=instance,
                home=home,
                storage=storage,
                catalog=catalog,
                sim_url=sim.base_url,
                env_extra=env_extra,
                log_path=root / "daemon.log",
            )
            stored = sum(
                1 for key in catalog.clips if storage.fs.exists(storage.clip_path(key.split("|")[1], key.split("|")[0]))
            )
        tasks = sim.sim.task_objects()
        provider_peak = {
            p: peak_overlap([(t.created_mono, t.done_mono) for t in tasks if t.provider == p])
            for p in catalog.by_provider()
        }
    print(figures.line(f"{args.instance}: backfill of {len(catalog.clips)} clips"))
    print(
        f"{args.instance}: clips stored {stored}/{len(catalog.clips)}; peak tasks in flight at the provider "
        f"{provider_peak}; total incl. daemon start {time.monotonic() - t0:.1f} s; daemon log {root / 'daemon.log'}"
    )
    for line in figures.storage_errors[:20]:
        print(f"  storage error: {line[:300]}")
    shutil.rmtree(root / "storage", ignore_errors=True)
    return 0 if stored == len(catalog.clips) else 1


class _nothing:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return None


if __name__ == "__main__":
    raise SystemExit(main())
