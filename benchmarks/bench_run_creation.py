"""Benchmark 9: creating one run of the clips asset over N partitions, before its first step.

Dagster stores a run's planned events when it creates the run: one per partition for the asset, and, when the
run's selection includes the asset's checks (an asset backfill's runs, the UI's Materialize; the CLI's
``clips_job`` leaves them out), one per check holding all N partitions, from which the event log writes an
execution row per check and partition (``seedance_pipeline/event_logs/checks.py``, M19). Timed:
``create_run_for_job`` of a job of ``clips`` with a partition-range tag, as the backfill daemon's runs are
tagged, on a fresh embedded default instance (``seedance_pipeline/event_logs``) per figure; its wall and CPU
time, and how much the instance's folder grew. The same run with the checks on Dagster's own SQLite event log
is printed for comparison (it grows as N squared: at the smaller N only).

``python -m benchmarks --only 9``; ``python -m benchmarks.bench_run_creation 1000 10000 30000`` prints the
rows for any sizes.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import loadavg, quiet_dagster, report

TARGET_S = 10.0  # at the largest N of the full run: a backfill of 10,000 clips starts within seconds
STOCK_CONFIG = "telemetry:\n  enabled: false\n"


def _folder_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6


def create(n: int, *, checks: bool, stock: bool = False) -> dict[str, float]:
    """Create (not execute) a run of ``clips`` over ``n`` partitions in a fresh instance; its costs."""
    import dagster as dg

    from seedance_pipeline.definitions import build_definitions
    from seedance_pipeline.event_logs.instance_config import ensure_instance_config
    from seedance_pipeline.lineage.names import CLIPS_KEY
    from seedance_pipeline.lineage.partitions import IMAGES, PROMPTS

    with tempfile.TemporaryDirectory(prefix="seedance-bench9-") as tmp:
        home = Path(tmp) / "home"
        if stock:
            home.mkdir()
            (home / "dagster.yaml").write_text(STOCK_CONFIG)
        else:
            ensure_instance_config(home)
        selection = dg.AssetSelection.assets(CLIPS_KEY)
        job_def = dg.Definitions.merge(
            build_definitions(),
            dg.Definitions(jobs=[dg.define_asset_job("bench9", selection if checks else selection.without_checks())]),
        ).resolve_job_def("bench9")
        with quiet_dagster(), dg.DagsterInstance.from_config(str(home)) as instance:
            images = [f"img{i:06d}" for i in range(n)]
            instance.add_dynamic_partitions(IMAGES, images)
            instance.add_dynamic_partitions(PROMPTS, ["bench"])
            before = _folder_mb(home)
            wall, cpu = time.perf_counter(), time.process_time()
            run = instance.create_run_for_job(
                job_def,
                tags={
                    "dagster/asset_partition_range_start": f"{images[0]}|bench",
                    "dagster/asset_partition_range_end": f"{images[-1]}|bench",
                },
            )
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            assert run.asset_check_selection is None or bool(run.asset_check_selection) is checks
        return {"wall": wall, "cpu": cpu, "mb": _folder_mb(home) - before}


def run(quick: bool = False) -> None:
    sizes = (200, 1000) if quick else (1000, 10_000)
    print(f"\n9 creating a run over N partitions (N = {', '.join(map(str, sizes))}); {loadavg()}", flush=True)
    # The process's planned events in batches, as every process on the project's instance stores them (M15).
    os.environ.setdefault("DAGSTER_EVENT_BATCH_SIZE", "1000")
    with_checks = {}
    for n in sizes:
        bare, full = create(n, checks=False), create(n, checks=True)
        with_checks[n] = full
        for label, fig in (("with its checks", full), ("without checks", bare)):
            judged = n == sizes[-1] and label == "with its checks" and not quick
            report(
                "9",
                f"run of {n} clips {label}, created",
                fig["wall"],
                "s",
                f"<= {TARGET_S:g}" if judged else None,
                f"CPU {fig['cpu']:.2f} s; instance folder +{fig['mb']:.1f} MB; {loadavg()}",
            )
    small, large = sizes
    report(
        "9",
        f"creation time x{large // small} partitions",
        with_checks[large]["wall"] / with_checks[small]["wall"],
        "x",
        None,
        f"with the checks; N squared would be x{(large // small) ** 2}",
    )
    stock = create(small, checks=True, stock=True)
    report(
        "9",
        f"run of {small} clips with its checks on Dagster's own SQLite event log, created",
        stock["wall"],
        "s",
        None,
        f"CPU {stock['cpu']:.2f} s; instance folder +{stock['mb']:.1f} MB; {loadavg()}",
    )


if __name__ == "__main__":
    os.environ.setdefault("DAGSTER_EVENT_BATCH_SIZE", "1000")
    for arg in sys.argv[1:] or ["1000"]:
        for checks in (False, True):
            fig = create(int(arg), checks=checks)
            print(
                f"N={arg} checks={checks}: {fig['wall']:.2f} s wall, {fig['cpu']:.2f} s CPU, +{fig['mb']:.1f} MB; "
                f"{loadavg()}",
                flush=True,
            )
