"""The benchmarks' quick mode runs and prints every figure, each sane. No absolute time is judged here.

Runs ``python -m benchmarks --quick --only 2,5``, ``--only 4`` and ``--only 12`` (status requests vs the SDKs, sensor
ticks, memory of downloads and of a run),
one small multi-partition clips run of benchmark 1/3 (N=20) and benchmark 7's cold and warm runs (N=8), in a
subprocess each.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
LINE = re.compile(r"^\s+(\d+) (.+?): (n/a|-?[\d.]+) (\S*)\s+(target .+?|\(comparison\))\s+(PASS|MISS|info)", re.M)

pytest.importorskip("wavespeed")
pytest.importorskip("runpod")


def _run(args: list[str], timeout: int) -> str:
    proc = subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


def _figures(out: str) -> dict[str, float]:
    return {f"{m[0]} {m[1]}": float(m[2]) for m in LINE.findall(out) if m[2] != "n/a"}


def test_quick_benchmarks_print_every_figure():
    # Benchmark 4 apart: run with 2 (as `--only 2,4` does, to save its minute) its 20 downloads compete with
    # benchmark 2's five simulators, and on a loaded 2-core CI machine a simulator then stalled past a client's
    # timeout (3 of 4 full runs, 2026-12-02).
    out = _run(["-m", "benchmarks", "--quick", "--only", "2,5"], timeout=600)
    out += _run(["-m", "benchmarks", "--quick", "--only", "4"], timeout=600)
    out += _run(["-m", "benchmarks", "--quick", "--only", "12"], timeout=600)
    figs = _figures(out)
    assert "load average" in out and "SUMMARY" in out
    for client in ("ours/wavespeed", "ours/runpod", "wavespeed SDK", "runpod SDK", "naive poll every 0.2 s"):
        per_clip = figs[f"2 {client}: status requests per clip"]
        assert per_clip >= 1  # at least one status request per task
        assert 0 <= figs[f"2 {client}: detection delay, mean share of task time"] < 100
    # ours asks far less often than the SDKs' fixed 1 s loops
    assert figs["2 ours/wavespeed: status requests per clip"] < figs["2 wavespeed SDK: status requests per clip"]
    for mb in (10, 20):
        assert 20 < figs[f"4 peak RSS, 20 x {mb} MB"] < 4000
    for label in ("local", "S3 (moto server)"):
        assert figs[f"5 storage sensor first tick, {label}"] > 0
        assert figs[f"5 storage sensor steady-state tick, {label}"] > 0
    assert figs["5 pending-tasks sensor tick, 500 tasks in flight, local"] > 0
    assert figs["5 collect runs requested, 500 tasks (half orphaned)"] == 250  # one per attempt of a dead run
    for n in (20, 60):
        assert 0 < figs[f"12 clips run of N = {n} with 2.8 MB source images: peak RSS above the run's start"] < 4000


def test_one_multi_partition_run_is_measured():
    out = _run(
        ["-c", "from benchmarks.bench_throughput import one_run; import json; print(json.dumps(one_run(20, 1.0, 10)))"],
        timeout=300,
    )
    import json

    r = json.loads(out.strip().splitlines()[-1])
    assert r["ok"] and r["stored"] == 20 and r["checks_passed"] == 40 and r["submit"] == 20
    assert r["wall"] >= 20 * 1.0 / 10  # never faster than the physical limit
    assert r["cpu"] > 0 and r["status"] >= 20
    # figure 3's split: each part of the run's CPU is seen on its own thread, and together they are the run's. The
    # other workers (task-record and sidecar writes) may use less than /proc's 10 ms tick in 20 clips: not asserted.
    threads = r["threads"]
    assert threads["dagster"] > 0 and threads["production"] > 0 and threads["probes"] > 0, threads
    assert 0 < r["decode_ms"] < 1000 * threads["probes"] / 20, (r["decode_ms"], threads)  # the decode, within a probe
    assert sum(threads.values()) <= r["cpu"] + 0.1 * len(threads), (threads, r["cpu"])


def test_a_run_on_s3_with_round_trips_is_measured():
    """Benchmark 1's S3 row: moto's server and the latency proxy start in processes of their own, the run
    stores every clip through them, their CPU is counted, and both are gone afterwards."""
    out = _run(
        [
            "-c",
            "from benchmarks.bench_throughput import one_run; import json; "
            "print(json.dumps(one_run(10, 1.0, 10, storage_kind='s3')))",
        ],
        timeout=300,
    )
    import json

    r = json.loads(out.strip().splitlines()[-1])
    assert r["ok"] and r["stored"] == 10 and r["checks_passed"] == 20 and r["submit"] == 10
    assert r["wall"] >= 10 * 1.0 / 10
    # every clip's MP4 went up through the proxy, which logged each request the run made
    assert r["s3_requests"] >= 10 and sum(r["s3_by_kind"].values()) == r["s3_requests"], r["s3_by_kind"]
    assert sum(v for k, v in r["s3_by_kind"].items() if k.startswith("PUT clips/")) >= 10, r["s3_by_kind"]
    assert r["s3_server_cpu"] > 0  # the CPU moto's server and the proxy spent serving those requests was read
    leftover = subprocess.run(["pgrep", "-f", "moto_server|S3FaultProxy"], capture_output=True, text=True).stdout
    assert leftover.strip() == "", leftover


def test_a_cold_and_a_warm_run_are_measured():
    """Benchmark 7 at quick size: both runs store every clip, and the second starts from what the first stored."""
    out = _run(
        [
            "-c",
            "from benchmarks.bench_warm_polling import measure; import json; print(json.dumps(measure(8)))",
        ],
        timeout=300,
    )
    import json

    r = json.loads(out.strip().splitlines()[-1])
    for run in ("cold", "warm"):
        assert (r[run]["stored"], r[run]["failed"]) == (8, 0), r
        assert r[run]["span_s"] >= 8 * 2.0 / 4  # never faster than the physical limit
        assert r[run]["status_per_clip"] >= 1
    # the prior is 60 s: a run that waited on it would span minutes, not the clips' few seconds
    assert r["cold"]["span_s"] < 30 and r["warm"]["span_s"] < 30, r


def test_the_catalog_steps_are_measured():
    """Benchmark 8 at 40 images x 5 prompts: every CLI step succeeds, registering writes events, and the run
    with nothing changed writes none (the figure the benchmark judges at 100,000 partitions)."""
    out = _run(
        [
            "-c",
            "from benchmarks.bench_catalog import measure; import json, dataclasses; "
            "print(json.dumps([dataclasses.asdict(s) for s in measure(40)]))",
        ],
        timeout=300,
    )
    import json

    steps = {s["name"]: s for s in json.loads(out.strip().splitlines()[-1])}
    assert all(s["rc"] == 0 and s["wall_s"] > 0 and s["rss_mb"] > 0 for s in steps.values()), steps
    assert steps["run #1 (register)"]["events_added"] >= 40  # one materialization per image, at least
    assert steps["run #2 (nothing changed)"]["events_added"] == 0, steps


def test_registration_on_s3_is_measured():
    """Benchmark 8's S3 step: the images uploaded to moto's server (behind the latency proxy) are all registered."""
    from benchmarks.bench_catalog import s3_registration

    r = s3_registration(12)
    assert r["registered"] == 12 and r["wall_s"] > 0, r


def test_creating_a_run_is_measured_with_and_without_its_checks():
    """Benchmark 9 at 200 partitions: each run is created in its instance, and the planned checks' rows grow the
    instance's folder (each row carrying its own partition's planned event; Dagster's carry all of them)."""
    out = _run(
        [
            "-c",
            "from benchmarks.bench_run_creation import create; import json; "
            "print(json.dumps({str(c) + k: create(200, checks=c, kind=k) "
            "for c, k in ((False, 'sqlite'), (True, 'sqlite'), (True, 'sqlite-stock'))}))",
        ],
        timeout=300,
    )
    import json

    r = json.loads(out.strip().splitlines()[-1])
    bare, checked, stock = r["Falsesqlite"], r["Truesqlite"], r["Truesqlite-stock"]
    assert all(f["wall"] > 0 and f["cpu"] > 0 for f in r.values()), r
    assert checked["mb"] > bare["mb"] > 0  # 7 x 200 planned check rows more
    assert stock["mb"] > 2 * checked["mb"], r  # each of Dagster's rows holds 200 partition keys


def test_the_daily_budget_check_is_measured_as_the_day_fills():
    """Benchmark 10 at 200 earlier attempts: every intent of the 20 threads is written and admitted, on a local
    folder and through the S3 proxy, with and without the day's kept cache; and locally after 200 of the run's own."""
    out = _run(
        [
            "-c",
            "from benchmarks.bench_day_budget import measure; import json; "
            "r = {k + str(c): measure(k, 200, kept=c) for k in ('local', 's3') for c in (True, False)}; "
            "r['own'] = measure('local', 0, own=200); print(json.dumps(r))",
        ],
        timeout=300,
    )
    import json

    r = json.loads(out.strip().splitlines()[-1])
    assert all(f["n"] == 100 and 0 < f["mean"] <= f["wall"] for f in r.values()), r
    # through the proxy every intent waits at least the round trips of its two writes
    assert r["s3True"]["mean"] > r["localTrue"]["mean"] and r["s3True"]["mean"] >= 2 * 0.03, r


def test_clips_waiting_for_a_provider_s_places_are_measured():
    """Benchmark 11 quick: every clip goes through the real limit, never more than its places at once."""
    out = _run(["-m", "benchmarks", "--quick", "--only", "11"], timeout=120)
    figs = _figures(out)
    for n in (1000, 10000):
        assert figs[f"11 clips waiting for 50 places at a provider, N = {n}: CPU per clip"] > 0
    lines = [line for line in out.splitlines() if line.lstrip().startswith("11 clips waiting for 50 places")]
    assert len(lines) == 4 and all("at most 50 at once" in line for line in lines), out  # and again in the summary
