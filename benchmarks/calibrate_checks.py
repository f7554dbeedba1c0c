"""Calibration of the content checks (docs/checks.md): each figure the checks judge, measured on the simulator's
good renders and on its deliberately bad ones (the output faults), over a spread of source images and shapes.

``python -m benchmarks.calibrate_checks`` renders every (source, shape, content) with the real renderer, probes
each clip as the pipeline does (``probe_video(..., sample_content=True)``), and prints per check the range of its
figure on good clips and on the clips of the fault meant to trip it, with the threshold between them, and what
the sampling costs per clip (CPU ms, the probe with and without it). It exits non-zero if a threshold does not
separate the two ranges, or if a fault trips any check but its own.
"""

from __future__ import annotations

import io
import sys
import time

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from benchmarks.common import cpu_s, loadavg
from seedance_pipeline.cli.demo_data import _tiles, _tower
from seedance_pipeline.clip import checks
from seedance_pipeline.clip.content import source_thumb
from seedance_pipeline.clip.probe import probe_video
from seedance_pipeline.simulator.render import CONTENT_FAULTS, render_clip

SHAPES = [(864, 496, 5), (640, 640, 4), (560, 752, 5), (1280, 720, 5)]
# The check each fault is meant to trip; a good render must trip none.
TRIPS = {
    "wrong_image": checks.RESEMBLES_SOURCE,
    "frozen": checks.NOT_FROZEN,
    "black": checks.NOT_BLANK,
    "silent": checks.AUDIO_PRESENT,
}
FIGURES = {
    checks.RESEMBLES_SOURCE: "similarity",
    checks.ENDS_ON_LAST_IMAGE: "similarity",
    checks.NOT_BLANK: "longest_blank_run_s",
    checks.NOT_FROZEN: "motion",
    checks.AUDIO_PRESENT: "audio_rms_dbfs",
}


def _png(img: Image.Image) -> bytes:
    out = io.BytesIO()
    img.save(out, format="PNG")
    return out.getvalue()


def _jpeg(img: Image.Image) -> bytes:
    out = io.BytesIO()
    img.save(out, format="JPEG", quality=88)
    return out.getvalue()


def sources() -> dict[str, bytes]:
    rng = np.random.default_rng(7)
    noise = rng.integers(0, 255, (90, 120, 3), dtype=np.uint8)
    photo = Image.fromarray(noise).resize((1200, 900), Image.Resampling.BICUBIC).filter(ImageFilter.GaussianBlur(6))
    shapes = Image.new("RGB", (1000, 700), (200, 210, 230))
    draw = ImageDraw.Draw(shapes)
    draw.ellipse([100, 100, 500, 500], fill=(200, 40, 40))
    draw.rectangle([550, 250, 900, 650], fill=(30, 90, 160))
    return {
        "demo-tower": _tower((720, 1280)),
        "demo-tiles": _tiles((1024, 1024)),
        "solid-green": _png(Image.new("RGB", (640, 480), (10, 120, 40))),
        "solid-black": _png(Image.new("RGB", (640, 640), (0, 0, 0))),
        "gradient": _png(Image.linear_gradient("L").convert("RGB").resize((800, 600))),
        "blurred-noise-jpeg": _jpeg(photo),
        "shapes": _png(shapes),
    }


def main() -> int:
    imgs = sources()
    names = list(imgs)
    figures: dict[tuple[str, str], list[float]] = {}  # (check, "good"|fault) -> figures
    wrong_trips: list[str] = []
    plain_cpu = sampled_cpu = 0.0
    clips = 0
    for i, name in enumerate(names):
        last_name = names[(i + 3) % len(names)]
        for width, height, duration in SHAPES:
            for content in (None, *CONTENT_FAULTS):
                for with_last in (False, True):
                    if with_last and content not in (None, "wrong_image"):
                        continue
                    last = imgs[last_name] if with_last else None
                    clip = render_clip(
                        imgs[name], width, height, duration, True, 11 + i, last_image=last, content=content
                    )
                    t = cpu_s()
                    probe_video(clip, preview_width=320)
                    plain_cpu += cpu_s() - t
                    t = cpu_s()
                    probe = probe_video(clip, preview_width=320, sample_content=True)
                    src = checks.Sources(
                        source_thumb(imgs[name], width, height),
                        source_thumb(last, width, height) if last else None,
                        has_last_image=last is not None,
                    )
                    results = checks.evaluate(probe, checks.Expected(width, height, duration, True), sources=src)
                    sampled_cpu += cpu_s() - t
                    clips += 1
                    kind = content or "good"
                    if content is None and not with_last:  # the provider ignored the last image: the bad side
                        ignored = checks.evaluate(
                            probe,
                            checks.Expected(width, height, duration, True),
                            sources=checks.Sources(
                                src.image, source_thumb(imgs[last_name], width, height), has_last_image=True
                            ),
                        )
                        figures.setdefault((checks.ENDS_ON_LAST_IMAGE, "last_ignored"), []).append(
                            float(ignored[checks.ENDS_ON_LAST_IMAGE][1]["similarity"])
                        )
                    for check, key in FIGURES.items():
                        value = results[check][1].get(key)
                        if value is not None:
                            figures.setdefault((check, kind), []).append(float(value))
                    failed = sorted(c for c, (ok, _) in results.items() if not ok)
                    meant = [TRIPS[content]] if content else []
                    if content == "black" and name == "solid-black":
                        meant = []  # a black-out of a black image shows the image: nothing to tell apart
                    if content == "wrong_image" and with_last:
                        meant = [checks.RESEMBLES_SOURCE]  # the last image still fades in: only the start is wrong
                    if failed != meant:
                        wrong_trips.append(
                            f"{name} {width}x{height} {kind} last={with_last}: failed {failed}, meant {meant}"
                        )
    print(f"{clips} clips, {len(names)} sources x {len(SHAPES)} shapes; figures per check (min .. max, n):")
    for check, key in FIGURES.items():
        for kind in ("good", *CONTENT_FAULTS, "last_ignored"):
            values = figures.get((check, kind))
            if values:
                print(f"  {check:20s} {key:20s} {kind:12s} {min(values):9.3f} .. {max(values):9.3f}  n={len(values)}")
    print(
        f"CPU per clip: probe {1000 * plain_cpu / clips:.1f} ms; probe + content sampling + checks "
        f"{1000 * sampled_cpu / clips:.1f} ms (+{1000 * (sampled_cpu - plain_cpu) / clips:.1f} ms); "
        f"{loadavg()}"
    )
    for line in wrong_trips:
        print("WRONG", line)
    return 1 if wrong_trips else 0


if __name__ == "__main__":
    t0 = time.time()
    code = main()
    print(f"{time.time() - t0:.0f} s")
    sys.exit(code)
