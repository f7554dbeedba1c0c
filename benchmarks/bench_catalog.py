"""Benchmark 8 (issue 16 §1): what a run costs when the catalog is large and the work is small, as a growth curve.

A catalog of I images (320x320 PNG) x 5 prompts that first target no image, local storage, the embedded SQLite
instance, each step the real CLI in a process of its own:

    run #1                       registers the I images and 5 prompts (0 clips wanted)
    run #2                       nothing changed: must launch no run and write no event
    forecast                     after the prompts are edited to target every image (I x 5 clips)
    backfill --changed --dry-run nothing outdated (every clip is missing, none changed)
    backfill --changed --missing --dry-run   plans all I x 5 clips (comparison)

Each step's wall time, the process's peak RSS (its own ``VmHWM`` as it exits), the Dagster home's size after it and,
for run #2, the events it added to the event log's index. Full: I = 200, 2,000, 20,000 (1k, 10k, 100k clip
partitions; the targets are judged at 100k, the size the README says the design supports); quick: I = 200.
``python -m benchmarks.bench_catalog 200 2000`` prints the rows for any sizes. Then, on S3 (moto behind the latency
proxy, 30 ms per request), registering 1,000 images (quick: 100): there each image's read is a round trip.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks import common

PROMPTS = 5


def _prompt(i: int, targets: str) -> bytes:
    return f'text: "catalog shot {i}"\nimages: {targets}\nprovider: novita\nduration: 4\nresolution: 480p\n'.encode()


def _size_mb(folder: Path) -> float:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 1e6


# The CLI, reporting its own peak RSS as it exits. VmHWM, not the child's ru_maxrss: Linux carries ru_maxrss across
# exec, so in `make bench`, after benchmark 1 grew this process to 600 MB, every step reported about 600 MB.
CLI = (
    "import atexit, os, sys\n"
    "def hwm():\n"
    "    with open('/proc/self/status') as fh:\n"
    "        kb = next(line.split()[1] for line in fh if line.startswith('VmHWM:'))\n"
    "    with open(os.environ['SEEDANCE_BENCH_HWM_FILE'], 'w') as out:\n"
    "        out.write(kb)\n"
    "atexit.register(hwm)\n"
    "sys.argv[0] = 'seedance-pipeline'\n"
    "from seedance_pipeline.cli import main\n"
    "main()\n"
)


def _step(args: list[str], env: dict[str, str]) -> tuple[float, float, int]:
    """(wall s, peak RSS MB of that child process, exit code) of one CLI command."""
    with tempfile.TemporaryFile() as log, tempfile.NamedTemporaryFile("r") as hwm:
        t0 = time.monotonic()
        proc = subprocess.run(
            [sys.executable, "-c", CLI, *args], env={**env, "SEEDANCE_BENCH_HWM_FILE": hwm.name}, stdout=log, stderr=log
        )
        wall = time.monotonic() - t0
        if proc.returncode:
            log.seek(0)
            print(log.read()[-3000:].decode(errors="replace"), file=sys.stderr)
        peak_kb = int(hwm.read() or 0)
    return wall, peak_kb / 1024, proc.returncode


def _events(home: Path) -> int:
    """Rows in the event log's index (every asset event and run event is mirrored there)."""
    index = home / "history" / "runs" / "index.db"
    if not index.exists():
        return 0
    with contextlib.closing(sqlite3.connect(index)) as db:
        return db.execute("select count(*) from event_logs").fetchone()[0]


REFRESH = (
    "from seedance_pipeline.cli.runner import Executor, RunReport, dagster_instance, refresh_sources\n"
    "from seedance_pipeline.definitions import build_definitions\n"
    "from seedance_pipeline.providers.resource import SeedanceProviders\n"
    "from seedance_pipeline.storage.resource import SeedanceStorage\n"
    "storage, instance = SeedanceStorage.from_env(), dagster_instance()\n"
    "defs = build_definitions(storage, SeedanceProviders.from_env())\n"
    "refresh_sources(instance, storage, Executor(instance, defs, RunReport(), 'CRITICAL'))\n"
)


# Registration on S3 (moto behind the latency proxy of benchmark 1, 30 ms per request), in a process of its own:
# what the images' reads cost where every read is a round trip. Prints {"wall_s", "cpu_s", "registered"}.
S3_REGISTER = """
import json, os, sys, tempfile, time
from pathlib import Path
from benchmarks.bench_throughput import _storage
from benchmarks.common import png
n, tmp = int(sys.argv[1]), tempfile.mkdtemp(prefix="seedance-bench8-s3-")
home = Path(tmp) / "home"
home.mkdir()
os.environ["DAGSTER_HOME"] = str(home)
from seedance_pipeline.event_logs.instance_config import ensure_instance_config
ensure_instance_config(home)
with _storage("s3", tmp) as storage:  # moto's server behind the proxy, with dummy AWS credentials
    for i in range(n):
        storage.fs.pipe(storage.path(f"images/img{i:06d}.png"), png(i, (320, 320)))
    storage.fs.pipe(storage.path("prompts/p0.yaml"), b'text: "x"\\nimages: ["none-*"]\\nprovider: novita\\n')
    from seedance_pipeline.cli.runner import Executor, RunReport, dagster_instance, refresh_sources
    from seedance_pipeline.definitions import build_definitions
    from seedance_pipeline.providers.resource import SeedanceProviders
    instance = dagster_instance()
    defs = build_definitions(storage, SeedanceProviders.from_env())
    t0, c0 = time.monotonic(), time.process_time()
    refresh_sources(instance, storage, Executor(instance, defs, RunReport(), "CRITICAL"))
    wall, cpu = time.monotonic() - t0, time.process_time() - c0
    from seedance_pipeline.lineage.names import IMAGES_KEY
    registered = len(instance.get_materialized_partitions(IMAGES_KEY))
    print(json.dumps({"wall_s": wall, "cpu_s": cpu, "registered": registered}))
"""


def s3_registration(images: int) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", S3_REGISTER, str(images)],
        cwd=Path(__file__).resolve().parents[1],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def _refresh(env: dict[str, str]) -> None:
    subprocess.run([sys.executable, "-c", REFRESH], env=env, check=True, capture_output=True)


@dataclass
class Step:
    name: str
    wall_s: float
    rss_mb: float
    home_mb: float
    rc: int
    events_added: int


def measure(images: int) -> list[Step]:
    work = Path(tempfile.mkdtemp(prefix=f"seedance-bench-catalog-{images}-"))
    try:
        storage, home = work / "storage", work / "dagster_home"
        (storage / "images").mkdir(parents=True)
        (storage / "prompts").mkdir()
        for i in range(images):
            (storage / "images" / f"img{i:06d}.png").write_bytes(common.png(i, (320, 320)))
        for p in range(PROMPTS):
            (storage / "prompts" / f"shot{p}.yaml").write_bytes(_prompt(p, '["none-*"]'))  # targets no image
        env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY") and not k.startswith("SEEDANCE_")}
        env.update(DAGSTER_HOME=str(home), SEEDANCE_STORAGE_URL=str(storage))
        home.mkdir()
        from seedance_pipeline.event_logs.instance_config import ensure_instance_config

        ensure_instance_config(home)
        steps = []

        def step(name: str, args: list[str]) -> None:
            before = _events(home)
            wall, rss, rc = _step(args, env)
            steps.append(Step(name, wall, rss, _size_mb(home), rc, _events(home) - before))

        step("run #1 (register)", ["run"])
        step("run #2 (nothing changed)", ["run"])
        for p in range(PROMPTS):
            (storage / "prompts" / f"shot{p}.yaml").write_bytes(_prompt(p, '["*"]'))
        # The edited prompts registered as the storage sensor would (a `run` would go on to make every clip).
        _refresh(env)
        step("forecast (all targeted)", ["forecast"])
        step("backfill --changed --dry-run", ["backfill", "--changed", "--dry-run"])
        step("backfill --changed --missing --dry-run", ["backfill", "--changed", "--missing", "--dry-run"])
        return steps
    finally:
        shutil.rmtree(work, ignore_errors=True)


def measure_and_print(images: int) -> list[Step]:
    print(
        f"\n8 catalog of {images} images x {PROMPTS} prompts = {images * PROMPTS} clip partitions; {common.loadavg()}",
        flush=True,
    )
    steps = measure(images)
    for s in steps:
        print(
            f"    {s.name:<40} {s.wall_s:7.1f} s  peak RSS {s.rss_mb:6.0f} MB  Dagster home {s.home_mb:7.1f} MB  "
            f"+{s.events_added} events" + (f"  EXIT {s.rc}" if s.rc else ""),
            flush=True,
        )
    return steps


# Targets (issue 16 §1), judged at the supported size: name -> (figure, unit, target).
TARGETS = {
    "run #1 (register)": ("registering {i} images", "s", "< 60"),
    "run #2 (nothing changed)": ("unchanged run", "s", "< 10"),
    "forecast (all targeted)": ("forecast of {n} clips", "s", "< 10"),
    "backfill --changed --dry-run": ("backfill --changed, nothing changed", "s", "< 10"),
}


def run(quick: bool = False) -> None:
    sizes = [200] if quick else [200, 2000, 20000]
    curve: dict[int, list[Step]] = {}
    for images in sizes:
        curve[images] = measure_and_print(images)
    print("\n8 growth curve (wall s per step; clip partitions across):", flush=True)
    print(f"    {'step':<40}" + "".join(f"{i * PROMPTS:>10}" for i in sizes), flush=True)
    for k, name in enumerate(s.name for s in curve[sizes[0]]):
        print(f"    {name:<40}" + "".join(f"{curve[i][k].wall_s:>10.1f}" for i in sizes), flush=True)
    s3_images = 100 if quick else 1000
    print(f"\n8 registering {s3_images} images on S3 (moto + 30 ms per request); {common.loadavg()}", flush=True)
    s3 = s3_registration(s3_images)
    common.report(
        "8",
        f"registering {s3_images} images on S3 (30 ms per request), per image",
        s3["wall_s"] / s3_images * 1000,
        "ms",
        None,
        f"{s3['registered']} registered in {s3['wall_s']:.1f} s wall, {s3['cpu_s']:.1f} s CPU; {common.loadavg()}",
    )
    images = sizes[-1]
    n = images * PROMPTS
    judged = "" if n >= 100_000 else f" (quick: {n} partitions; the targets are for 100,000)"
    for s in curve[images]:
        failed = f"; EXIT {s.rc}" if s.rc else ""
        if s.name in TARGETS:
            label, unit, target = TARGETS[s.name]
            common.report(
                "8",
                label.format(i=images, n=n),
                s.wall_s,
                unit,
                target if not judged else None,
                f"{judged.strip(' ()') or f'{n} partitions'}; peak RSS {s.rss_mb:.0f} MB{failed}; {common.loadavg()}",
            )
        if s.name == "forecast (all targeted)":
            common.report("8", f"forecast of {n} clips, peak RSS", s.rss_mb, "MB", "< 300" if not judged else None)
        if s.name == "run #2 (nothing changed)":
            common.report("8", "events written by an unchanged run", s.events_added, "", "<= 0", f"{n} partitions")


def main(argv: list[str]) -> int:
    for images in [int(a) for a in argv] or [200]:
        measure_and_print(images)
        print(f"    {common.loadavg()}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
