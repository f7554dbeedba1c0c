"""Benchmark 4: peak RSS while 20 outputs of S MB each download concurrently into storage.

A fresh Python process (so the figure is not the benchmark runner's own peak) imports the engine, runs
20 tasks on the simulator (its own process, ``output_size_bytes`` = S MB: the real MP4's ftyp head, then
zero padding, streamed with a Content-Length), and streams every output with ``ProviderClient.download``
(through ``generate_clip``) into local storage. Peak RSS = that process's ``VmHWM`` (its own peak; ``ru_maxrss``
would include its parent's, carried across exec); also printed:
its RSS after imports, before any download (the baseline). Done for S and 2 S (full: 100 and 200 MB).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

from benchmarks.common import SimProcess, loadavg, png, report, sim_config

CHILD = r"""
import asyncio, json, os, sys, tempfile, time
import fsspec
from seedance_pipeline.clip.generate import generate_clip
from seedance_pipeline.clip.prepare import build_request, prepare
from seedance_pipeline.providers import get_adapter
from seedance_pipeline.providers.engine import ClientSettings, ProviderClient
from seedance_pipeline.core.images import inspect_image

base, image_url, n, folder = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
import httpx
data = httpx.get(image_url).content
img = inspect_image(image_url, data)

def status_mb(field):
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
baseline = status_mb("VmRSS")

async def main():
    fs = fsspec.filesystem("file")
    settings = ClientSettings(expected_latency_s=0.5, max_in_flight=n, min_poll_interval_s=0.1)
    async with ProviderClient(get_adapter("novita"), "bench", base_url=base, settings=settings) as client:
        async def one(i):
            req = build_request(prompt=f"big {i}", image=image_url, duration=4, resolution="480p", aspect_ratio="16:9",
                                generate_audio=False, camera_fixed=False, seed=i)
            prepared = prepare(get_adapter("novita"), req, images={image_url: img})
            return await generate_clip(client, prepared, fs, f"{folder}/{i}.mp4")
        return await asyncio.gather(*(one(i) for i in range(n)))

t0 = time.monotonic()
results = asyncio.run(main())
wall = time.monotonic() - t0
sizes = [r.size_bytes for r in results]
for r in results:
    os.unlink(r.output)
# VmHWM, not ru_maxrss: Linux carries ru_maxrss across exec, so a child of a big parent would report the parent's peak.
print(json.dumps({"baseline_mb": baseline, "peak_mb": status_mb("VmHWM"),
                  "sizes": sizes, "wall": wall}))
"""


def measure(size_mb: int, n: int = 20) -> dict:
    size = size_mb * 1024 * 1024
    with (
        SimProcess(sim_config(0.5, output_size_bytes=size, providers=("novita",))) as sim,
        tempfile.TemporaryDirectory(prefix="seedance-bench4-") as tmp,
    ):
        image_url = sim.put_asset("bench.png", png(3))
        proc = subprocess.run(
            [sys.executable, "-c", CHILD, sim.url("novita"), image_url, str(n), tmp],
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONWARNINGS": "ignore"},
        )
        if proc.returncode != 0:
            raise RuntimeError(proc.stderr[-3000:])
        out = json.loads(proc.stdout.strip().splitlines()[-1])
        out["ok"] = all(s == size for s in out["sizes"])
        return out


def measure_all(quick: bool = False) -> dict[int, dict]:
    """Both sizes, nothing printed (``__main__`` runs this while benchmark 2 waits on its minute-long tasks:
    the figure is the peak RSS of a process of its own, which the other benchmark's load does not change)."""
    return {mb: measure(mb) for mb in ((10, 20) if quick else (100, 200))}


def report_all(results: dict[int, dict], note: str = "") -> None:
    print(
        f"[4] peak RSS of our process while 20 outputs download concurrently into local storage{note}; {loadavg()}",
        flush=True,
    )
    for mb, r in results.items():
        report(
            "4",
            f"peak RSS, 20 x {mb} MB",
            r["peak_mb"],
            "MB",
            "< 250",
            note=f"baseline after imports {r['baseline_mb']:.0f} MB; {20 * mb} MB moved in {r['wall']:.1f} s; "
            f"all sizes exact: {r['ok']}",
        )
    a, b = results
    report(
        "4",
        f"peak RSS growth when the output doubles ({a} -> {b} MB)",
        results[b]["peak_mb"] - results[a]["peak_mb"],
        "MB",
        "<= 25",
        note="flat = within 10 % of the 250 MB budget",
    )


def run(quick: bool = False) -> None:
    report_all(measure_all(quick))
