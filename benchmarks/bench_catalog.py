"""Benchmark 8 (issue 16 §1, measured before any change to it): what a run costs when the catalog is large and
the work is small. A catalog of I images (320x320 PNG) x 5 prompts that first target no image, local storage, the
embedded SQLite instance, each step the real CLI in a process of its own:

    run #1             registers the I images and 5 prompts (0 clips wanted)
    run #2             nothing changed
    forecast           after the prompts are edited to target every image (I x 5 clips)
    backfill --changed --missing --dry-run

Each step's wall time, the process's peak RSS (``ru_maxrss`` of the child) and the Dagster home's size after it.
``python -m benchmarks.bench_catalog 1000 10000`` (no targets yet: the figures are the baseline issue 16 asks to
bring under 10 s at 100,000 partitions).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import common

PROMPTS = 5


def _prompt(i: int, targets: str) -> bytes:
    return f'text: "catalog shot {i}"\nimages: {targets}\nprovider: novita\nduration: 4\nresolution: 480p\n'.encode()


def _size_mb(folder: Path) -> float:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 1e6


def _step(args: list[str], env: dict[str, str]) -> tuple[float, float, int]:
    """(wall s, peak RSS MB of that child process, exit code) of one CLI command."""
    with tempfile.TemporaryFile() as log:
        t0 = time.monotonic()
        proc = subprocess.Popen(
            [str(Path(sys.executable).with_name("seedance-pipeline")), *args], env=env, stdout=log, stderr=log
        )
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage
        wall = time.monotonic() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode:
            log.seek(0)
            print(log.read()[-3000:].decode(errors="replace"), file=sys.stderr)
    return wall, usage.ru_maxrss / 1024, proc.returncode


REFRESH = (
    "from seedance_pipeline.cli.runner import Executor, RunReport, dagster_instance, refresh_sources\n"
    "from seedance_pipeline.definitions import build_definitions\n"
    "from seedance_pipeline.providers.resource import SeedanceProviders\n"
    "from seedance_pipeline.storage.resource import SeedanceStorage\n"
    "storage, instance = SeedanceStorage.from_env(), dagster_instance()\n"
    "defs = build_definitions(storage, SeedanceProviders.from_env())\n"
    "refresh_sources(instance, storage, Executor(instance, defs, RunReport(), 'CRITICAL'))\n"
)


def _refresh(env: dict[str, str]) -> None:
    subprocess.run([sys.executable, "-c", REFRESH], env=env, check=True, capture_output=True)


def measure(images: int) -> list[tuple[str, float, float, float, int]]:
    from PIL import Image

    work = Path(tempfile.mkdtemp(prefix=f"seedance-bench-catalog-{images}-"))
    storage, home = work / "storage", work / "dagster_home"
    (storage / "images").mkdir(parents=True)
    (storage / "prompts").mkdir()
    for i in range(images):
        color = ((i * 37) % 256, (i // 256 * 59) % 256, (i * 11 + 90) % 256)
        Image.new("RGB", (320, 320), color).save(storage / "images" / f"img{i:06d}.png")
    for p in range(PROMPTS):
        (storage / "prompts" / f"shot{p}.yaml").write_bytes(_prompt(p, '["none-*"]'))  # targets no image
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY") and not k.startswith("SEEDANCE_")}
    env.update(DAGSTER_HOME=str(home), SEEDANCE_STORAGE_URL=str(storage))
    home.mkdir()
    from seedance_pipeline.event_logs.instance_config import ensure_instance_config

    ensure_instance_config(home)
    rows = []
    for name, args in (("run #1 (register)", ["run"]), ("run #2 (nothing changed)", ["run"])):
        wall, rss, rc = _step(args, env)
        rows.append((name, wall, rss, _size_mb(home), rc))
    for p in range(PROMPTS):
        (storage / "prompts" / f"shot{p}.yaml").write_bytes(_prompt(p, '["*"]'))
    # The edited prompts registered as the storage sensor would (a `run` would go on to make every clip).
    _refresh(env)
    for name, args in (
        ("forecast (all targeted)", ["forecast"]),
        ("backfill --changed --missing --dry-run", ["backfill", "--changed", "--missing", "--dry-run"]),
    ):
        wall, rss, rc = _step(args, env)
        rows.append((name, wall, rss, _size_mb(home), rc))
    return rows


def main(argv: list[str]) -> int:
    sizes = [int(a) for a in argv] or [1000]
    for images in sizes:
        print(
            f"\n8 catalog of {images} images x {PROMPTS} prompts = {images * PROMPTS} clip partitions; "
            f"{common.loadavg()}",
            flush=True,
        )
        for name, wall, rss, home_mb, rc in measure(images):
            print(
                f"    {name:<40} {wall:7.1f} s  peak RSS {rss:6.0f} MB  Dagster home {home_mb:7.1f} MB"
                + (f"  EXIT {rc}" if rc else ""),
                flush=True,
            )
        print(f"    {common.loadavg()}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
