"""Benchmark 9: creating one run of the clips asset over N partitions, before its first step.

Dagster stores a run's planned events when it creates the run: one per partition for the asset, and, when the
run's selection includes the asset's checks (an asset backfill's runs, the UI's Materialize; the CLI's
``clips_job`` leaves them out), one per check holding all N partitions, from which the event log writes an
execution row per check and partition (``seedance_pipeline/event_logs/checks.py``, M19). Timed:
``create_run_for_job`` of a job of ``clips`` with a partition-range tag, as the backfill daemon's runs are
tagged, on a fresh instance per figure: the embedded default (``seedance_pipeline/event_logs``) and, in full
mode, PostgreSQL with ``deploy/dagster.yaml``'s classes (benchmark 1's private cluster); its wall and CPU time,
and how much the instance's storage grew. The same run with the checks on Dagster's own event logs is printed
for comparison (it grows as N squared: at the smaller N only).

``python -m benchmarks --only 9``; ``python -m benchmarks.bench_run_creation 1000 10000 30000`` prints the
rows for any sizes (``BENCH9_INSTANCE=postgres`` and the other kinds of benchmark 1's ``_instance`` too).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import loadavg, quiet_dagster, report
from seedance_pipeline.event_logs import ask_for_batches

TARGET_S = 10.0  # at the largest N of the full run: a backfill of 10,000 clips starts within seconds
KINDS = {
    "sqlite": "the embedded default",
    "sqlite-stock": "Dagster's own SQLite event log",
    "postgres": "PostgreSQL (deploy/dagster.yaml)",
    "postgres-stock": "dagster-postgres' own event log",
}


def _stored_mb(instance, tmp: str, kind: str) -> float:
    if kind.startswith("postgres"):
        from sqlalchemy import text

        with instance.event_log_storage.index_connection() as conn:
            return conn.execute(text("SELECT pg_database_size(current_database())")).scalar_one() / 1e6
    return sum(f.stat().st_size for f in Path(tmp).rglob("*") if f.is_file()) / 1e6


def create(n: int, *, checks: bool, kind: str = "sqlite") -> dict[str, float]:
    """Create (not execute) a run of ``clips`` over ``n`` partitions in a fresh ``kind`` instance (benchmark 1's
    ``_instance``); its wall and CPU time (this process's; the PostgreSQL server's not counted) and how much the
    instance's storage grew."""
    import dagster as dg

    from benchmarks.bench_throughput import _instance
    from seedance_pipeline.definitions import build_definitions
    from seedance_pipeline.lineage.names import CLIPS_KEY
    from seedance_pipeline.lineage.partitions import IMAGES, PROMPTS, clip_range_tags

    selection = dg.AssetSelection.assets(CLIPS_KEY)
    job_def = dg.Definitions.merge(
        build_definitions(),
        dg.Definitions(jobs=[dg.define_asset_job("bench9", selection if checks else selection.without_checks())]),
    ).resolve_job_def("bench9")
    with (
        tempfile.TemporaryDirectory(prefix="seedance-bench9-") as tmp,
        quiet_dagster(),
        _instance(kind, tmp) as (instance, _),
    ):
        images = [f"img{i:06d}" for i in range(n)]
        instance.add_dynamic_partitions(IMAGES, images)
        instance.add_dynamic_partitions(PROMPTS, ["bench"])
        before = _stored_mb(instance, tmp, kind)
        wall, cpu = time.perf_counter(), time.process_time()
        instance.create_run_for_job(job_def, tags=clip_range_tags(images, ["bench"]))
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        return {"wall": wall, "cpu": cpu, "mb": _stored_mb(instance, tmp, kind) - before}


def _report(n: int, checks: bool, kind: str, fig: dict[str, float], target: str | None = None) -> None:
    label = "with its checks" if checks else "without checks"
    where = "" if kind == "sqlite" else f" on {KINDS[kind]}"
    grew = "database" if kind.startswith("postgres") else "instance folder"
    report(
        "9",
        f"run of {n} clips {label}{where}, created",
        fig["wall"],
        "s",
        target,
        f"CPU {fig['cpu']:.2f} s; {grew} +{fig['mb']:.1f} MB; {loadavg()}",
    )


def run(quick: bool = False) -> None:
    from benchmarks.bench_throughput import postgres_available

    sizes = (200, 1000) if quick else (1000, 10_000)
    small, large = sizes
    print(f"\n9 creating a run over N partitions (N = {small}, {large}); {loadavg()}", flush=True)
    # The process's planned events in batches, as every process on the project's instance stores them (M15).
    ask_for_batches()
    with_checks = {}
    for n in sizes:
        with_checks[n] = create(n, checks=True)
        _report(n, True, "sqlite", with_checks[n], f"<= {TARGET_S:g}" if n == large and not quick else None)
        _report(n, False, "sqlite", create(n, checks=False))
    report(
        "9",
        f"creation time x{large // small} partitions",
        with_checks[large]["wall"] / with_checks[small]["wall"],
        "x",
        None,
        f"with the checks; N squared would be x{(large // small) ** 2}",
    )
    _report(small, True, "sqlite-stock", create(small, checks=True, kind="sqlite-stock"))
    if quick:
        return
    if not postgres_available():
        print("  9 PostgreSQL rows skipped: no PostgreSQL server binaries here", flush=True)
        return
    _report(large, True, "postgres", create(large, checks=True, kind="postgres"), f"<= {TARGET_S:g}")
    _report(large, False, "postgres", create(large, checks=False, kind="postgres"))
    _report(small, True, "postgres-stock", create(small, checks=True, kind="postgres-stock"))


if __name__ == "__main__":
    ask_for_batches()
    kind = os.environ.get("BENCH9_INSTANCE", "sqlite")
    for arg in sys.argv[1:] or ["1000"]:
        for checks in (False, True):
            _report(int(arg), checks, kind, create(int(arg), checks=checks, kind=kind))
