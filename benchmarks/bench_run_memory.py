"""Benchmark 12: a clips run's memory against the images it sends.

Benchmark 1's run (one ``clips_job`` of N clips, L = 2 s, C = 20, local storage, the embedded SQLite instance), with
source images of real size instead of solid colours: 1280 x 720 noise PNGs of 2.8 MB each, N distinct images. The
figure is this process's peak RSS during the run above its RSS when the run started (``VmHWM`` reset through
/proc/self/clear_refs at the start). A run keeps an image's bytes in memory only while a request that carries
them is sent (M30): the peak must not grow with N. Before M30 every image of the run was read before the first
submit and kept until the run ended: +286 MB at N = 50 and +685 MB at N = 200 (2026-12-08 02:02, load 1.0), 2.8 GB
at 1,000 by that slope. Also printed: when the first submit left.

``python -m benchmarks --only 12``; ``python -m benchmarks.bench_run_memory 50 400`` for any N.
"""

from __future__ import annotations

import functools
import io
import sys

from benchmarks.common import loadavg, report

SIZE = (1280, 720)
TARGET_MB = 300  # at the largest N: 20 images in flight are 56 MB; the rest is the run's own working set


def _noise(i: int) -> bytes:
    import numpy as np
    from PIL import Image

    pixels = np.random.default_rng(i).integers(0, 256, (SIZE[1], SIZE[0], 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


@functools.cache
def _image_mb() -> float:
    return len(_noise(0)) / 1e6


def measure(n: int) -> dict:
    from benchmarks.bench_throughput import one_run

    r = one_run(n, 2.0, 20, image_of=_noise)
    if not (r["ok"] and r["stored"] == n):
        raise RuntimeError(f"benchmark 12's run stored {r['stored']} of {n} clips")
    return {"n": n, "grown_mb": r["peak_rss_mb"] - r["rss_before_mb"], **r}


def _report(r: dict, target: str | None = None) -> None:
    n, image_mb = r["n"], _image_mb()
    report(
        "12",
        f"clips run of N = {n} with {image_mb:.1f} MB source images: peak RSS above the run's start",
        r["grown_mb"],
        "MB",
        target,
        f"the run's images are {n * image_mb:.0f} MB; RSS {r['rss_before_mb']:.0f} MB at the start, peak "
        f"{r['peak_rss_mb']:.0f} MB; first submit after {r['first_submit_s']:.2f} s; wall {r['wall']:.1f} s "
        f"(ideal {n * 2.0 / 20:.1f} s); {loadavg()}",
    )


def run(quick: bool = False) -> None:
    sizes = (20, 60) if quick else (50, 400)
    print(f"\n12 a clips run's memory against the images it sends (N = {', '.join(map(str, sizes))}); {loadavg()}")
    for n in sizes:
        _report(measure(n), None if quick or n != sizes[-1] else f"<= {TARGET_MB}")


if __name__ == "__main__":
    for arg in sys.argv[1:] or ["50", "200"]:
        _report(measure(int(arg)))
