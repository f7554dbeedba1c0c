"""Benchmark 11: clips waiting for a provider's places, as a big run's do.

A run starts every clip it produces as soon as its plan is made, and each waits in the provider client's limit
(``seedance_pipeline/providers/engine/limit.py`` ``AdaptiveLimit``, ``async with client.slot()``) for one of the
C places the provider allows in flight. Timed: N clips (N = 1,000, 10,000, 50,000; quick: 1,000, 10,000) through
the real limit at C = 50, each holding its place for a task of 1 ms and reporting its submit accepted, as
``ProviderClient.submit`` does; the figure is the event loop's CPU per clip. The limit's cost must not grow with
the clips waiting behind it (M24: it woke every waiting clip at each task's end, N squared a run).

``python -m benchmarks --only 11``; ``python -m benchmarks.bench_waiting 1000 100000`` prints the rows for any N.
"""

from __future__ import annotations

import asyncio
import sys
import time

from benchmarks.common import loadavg, report

PLACES, TASK_S = 50, 0.001
TARGET_MS = 0.1  # at the largest N: CPU per clip (before M24: 0.16 ms at 2,000, 0.69 at 10,000)


async def _through(n: int) -> tuple[float, float, int]:
    from seedance_pipeline.providers.engine.limit import AdaptiveLimit

    limit = AdaptiveLimit(PLACES, min_interval_s=0.0, max_interval_s=1.0)
    most = 0

    async def clip() -> None:
        nonlocal most
        async with limit:
            most = max(most, limit.in_flight)
            await limit.accepted()
            await asyncio.sleep(TASK_S)

    cpu, wall = time.process_time(), time.monotonic()
    await asyncio.gather(*(clip() for _ in range(n)))
    return time.process_time() - cpu, time.monotonic() - wall, most


def measure(n: int) -> dict[str, float]:
    cpu, wall, most = asyncio.run(_through(n))
    if most > PLACES:
        raise RuntimeError(f"{most} clips held a place at once, more than the {PLACES} allowed")
    return {"n": n, "cpu": cpu, "wall": wall, "most": most}


def _report(fig: dict[str, float], target: str | None = None) -> None:
    n = int(fig["n"])
    report(
        "11",
        f"clips waiting for {PLACES} places at a provider, N = {n}: CPU per clip",
        1000 * fig["cpu"] / n,
        "ms",
        target,
        f"all {n} in {fig['wall']:.2f} s (ideal {n * TASK_S / PLACES:.2f} s), at most {int(fig['most'])} at once; "
        f"{loadavg()}",
    )


def run(quick: bool = False) -> None:
    sizes = (1000, 10_000) if quick else (1000, 10_000, 50_000)
    print(f"\n11 clips waiting for a provider's places (N = {', '.join(map(str, sizes))}, C = {PLACES}); {loadavg()}")
    for n in sizes:
        _report(measure(n), None if quick or n != sizes[-1] else f"<= {TARGET_MS:g}")


if __name__ == "__main__":
    for arg in sys.argv[1:] or ["1000", "10000"]:
        _report(measure(int(arg)))
