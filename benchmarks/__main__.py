"""``python -m benchmarks [--quick] [--only 1,2,...] [--profile DIR]``: run the benchmarks, print every figure.

Benchmarks 1 and 3 come from the same runs (3 = CPU of the runs of 1). Each figure is printed with its
target and PASS/MISS, and the load average; the summary at the end repeats them all.
"""

from __future__ import annotations

import argparse
import sys
import time

from benchmarks import common


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks")
    ap.add_argument(
        "--quick",
        action="store_true",
        help="scaled-down sizes and latencies (CI); figures printed, absolute times not judged",
    )
    ap.add_argument(
        "--only", default="1,2,3,4,5,6,7,8,9,10,11,12", help="comma-separated benchmark numbers (1 and 3 run together)"
    )
    ap.add_argument("--profile", default=None, help="folder for pyinstrument profiles of benchmark 1")
    ap.add_argument(
        "--diagnostics",
        action="store_true",
        help="benchmark 1 also on an in-memory and a PostgreSQL instance (N=200; +1-2 min)",
    )
    args = ap.parse_args(argv)
    only = {int(x) for x in args.only.split(",") if x.strip()}
    t0 = time.monotonic()
    print(f"seedance-pipeline benchmarks ({'quick' if args.quick else 'full'}); start: {common.loadavg()}", flush=True)
    if only & {1, 3}:
        from benchmarks import bench_throughput

        bench_throughput.run(args.quick, args.profile, args.diagnostics)
    if 2 in only and 4 in only:
        # Benchmark 2 mostly waits (tasks of 60-120 s); benchmark 4 measures the peak RSS of a process of its own,
        # which that wait does not change. Run together, they save benchmark 4's minute; 4 prints after 2.
        from concurrent.futures import ThreadPoolExecutor

        from benchmarks import bench_memory, bench_requests

        with ThreadPoolExecutor(1) as pool:
            memory = pool.submit(bench_memory.measure_all, args.quick)
            bench_requests.run(args.quick)
            bench_memory.report_all(memory.result(), note=" (measured while benchmark 2 waited)")
    elif 2 in only:
        from benchmarks import bench_requests

        bench_requests.run(args.quick)
    elif 4 in only:
        from benchmarks import bench_memory

        bench_memory.run(args.quick)
    if 5 in only:
        from benchmarks import bench_sensors

        bench_sensors.run(args.quick)
    if 6 in only:
        from benchmarks import bench_rate_limit

        bench_rate_limit.run(args.quick)
    if 7 in only:
        from benchmarks import bench_warm_polling

        bench_warm_polling.run(args.quick)
    if 8 in only:
        from benchmarks import bench_catalog

        bench_catalog.run(args.quick)
    if 9 in only:
        from benchmarks import bench_run_creation

        bench_run_creation.run(args.quick)
    if 10 in only:
        from benchmarks import bench_day_budget

        bench_day_budget.run(args.quick)
    if 11 in only:
        from benchmarks import bench_waiting

        bench_waiting.run(args.quick)
    if 12 in only:
        from benchmarks import bench_run_memory

        bench_run_memory.run(args.quick)
    print(
        f"\nSUMMARY ({'quick: scaled sizes/latencies, absolute times not judged' if args.quick else 'full'}); "
        f"{time.monotonic() - t0:.0f} s total; end: {common.loadavg()}"
    )
    for fig in common.FIGURES:
        print(fig.line())
    return 0


if __name__ == "__main__":
    sys.exit(main())
