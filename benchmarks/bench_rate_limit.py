"""Benchmark 6: clips at a provider on its entry tier, which answers 429 without Retry-After past its limit.

WaveSpeed's Bronze tier allows 2 videos a minute and 2 at once (docs/providers.md §4.5). N = 20 clips of one
prompt go through ``seedance-pipeline run``'s path (``run_pipeline``, SQLite instance, local storage) to the
simulator in that mode (``submits_per_window`` 2 per rolling ``rate_window_s``, ``max_running`` 2). The limit's
own ideal is N x window / 2: 10 minutes at full scale. The window is scaled down (full: 12 s, quick: 2 s; the
first spacing after a 429, ``throttle_min_interval_s``, with it) so the benchmark stays short; the figure is the
time from the first task created to the last one done, over that ideal.
"""

from __future__ import annotations

import tempfile
import time
from typing import Any

from benchmarks import common

N, PER_WINDOW, RUNNING = 20, 2, 2


def measure(n: int = N, window_s: float = 2.0, latency_s: float = 0.3) -> dict[str, Any]:
    import dagster as dg

    from seedance_pipeline.cli.runner import run_pipeline
    from seedance_pipeline.providers.resource import SeedanceProviders
    from seedance_pipeline.simulator.config import ProviderSimConfig, SimConfig
    from seedance_pipeline.simulator.server import SimulatorServer
    from seedance_pipeline.storage.resource import SeedanceStorage

    folder = tempfile.mkdtemp(prefix="seedance-bench-rate-")
    storage = SeedanceStorage(url=f"{folder}/storage")
    for i in range(n):
        storage.write_bytes(storage.path("images", f"img{i:02d}.png"), common.png(i))
    storage.write_bytes(
        storage.path("prompts", "pan.yaml"), b'text: "pan"\nprovider: wavespeed\nduration: 4\nresolution: 480p\n'
    )
    tier = ProviderSimConfig(
        latency_min_s=latency_s,
        latency_max_s=latency_s,
        submits_per_window=PER_WINDOW,
        rate_window_s=window_s,
        max_running=RUNNING,
    )
    with SimulatorServer(SimConfig(providers={"wavespeed": tier})) as srv, dg.instance_for_test() as instance:
        providers = SeedanceProviders(
            simulator_url=srv.base_url,
            simulator_latency_s=latency_s,
            client_settings={"throttle_min_interval_s": window_s / PER_WINDOW / 2},
        )
        t0 = time.monotonic()
        report = run_pipeline(instance, storage, providers)
        wall = time.monotonic() - t0
        tasks = srv.sim.tasks()
        accepted = srv.sim.admitted_submits("wavespeed")
        span = max(t["finished_at"] for t in tasks) - min(t["created_at"] for t in tasks) if tasks else None
        throttle_lines = [
            e.user_message for e in instance.all_logs(report.runs["clips"]) if "is throttling" in (e.user_message or "")
        ]
        return {
            "stored": len(report.clips),
            "failed": len(report.failures),
            "tasks": len(tasks),
            "http_429": srv.sim.stats()["rate_limited"]["wavespeed"],
            "span_s": span,
            "ideal_s": n * window_s / PER_WINDOW,
            "wall_s": wall,
            "most_in_any_window": _most_in_window(accepted, window_s),
            "throttle_log": throttle_lines[:1],
        }


def _most_in_window(times: list[float], window_s: float) -> int:
    """The most accepted submits in any rolling window: the limit held if this is at most PER_WINDOW."""
    return max((sum(1 for u in times if t <= u < t + window_s) for t in times), default=0)


def run(quick: bool = False) -> None:
    window = 2.0 if quick else 12.0
    print(
        f"\n6 rate limits: {N} clips, {PER_WINDOW} per {window:.0f} s rolling window and {RUNNING} at once "
        f"(WaveSpeed's entry tier, 2 a minute, scaled); start: {common.loadavg()}",
        flush=True,
    )
    r = measure(N, window)
    ratio = r["span_s"] / r["ideal_s"] if r["span_s"] else None
    note = (
        f"{r['stored']}/{N} stored, {r['failed']} failed, {r['http_429']} HTTP 429 received, at most "
        f"{r['most_in_any_window']} accepted in any window; first task to last done {r['span_s']:.1f} s vs the "
        f"limit's ideal {r['ideal_s']:.0f} s; {common.loadavg()}"
    )
    common.report("6", f"actual/ideal at the provider's rate limit, N={N}", ratio, "", "<= 1.25", note)
    common.report("6", "HTTP 429 received", float(r["http_429"]), "", None, "without Retry-After: none fails a clip")
