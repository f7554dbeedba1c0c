"""Shared parts of the benchmarks: the simulator in its own process, figures, CPU and load readings."""

from __future__ import annotations

import io
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

import httpx

FIGURES: list[Figure] = []


@dataclass
class Figure:
    bench: str
    name: str
    value: float | None
    unit: str
    target: str | None = None  # e.g. ">= 0.85"; None: reported for comparison only
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def verdict(self) -> str:
        if self.target is None or self.value is None:
            return "info"
        op, _, num = self.target.partition(" ")
        bound = float(num)
        ok = {"<=": self.value <= bound, "<": self.value < bound, ">=": self.value >= bound, ">": self.value > bound}[
            op
        ]
        return "PASS" if ok else "MISS"

    def line(self) -> str:
        value = "n/a" if self.value is None else (f"{self.value:.3f}" if abs(self.value) < 100 else f"{self.value:.1f}")
        target = f"target {self.target} {self.unit}".rstrip() if self.target else "(comparison)"
        note = f"  [{self.note}]" if self.note else ""
        return f"  {self.bench} {self.name}: {value} {self.unit}  {target}  {self.verdict}{note}"


def report(
    bench: str, name: str, value: float | None, unit: str, target: str | None = None, note: str = "", **extra: Any
) -> Figure:
    fig = Figure(bench, name, value, unit, target, note, extra)
    FIGURES.append(fig)
    print(fig.line(), flush=True)
    return fig


def loadavg() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} ({os.cpu_count()} cores)"


def cpu_s() -> float:
    """user+sys CPU seconds of this process (all threads). The simulator runs in another process."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def status_mb(field: str) -> float:
    """``VmRSS``, ``VmHWM``, ... of this process from /proc/self/status, in MB."""
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith(field + ":")) / 1024


def reset_peak_rss() -> float:
    """Resets this process's peak RSS (``VmHWM``) to its RSS now (Linux >= 4.0, /proc/self/clear_refs); returns it."""
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")
    return status_mb("VmRSS")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sim_config(
    latency_min_s: float,
    latency_max_s: float | None = None,
    *,
    max_concurrency: int | None = None,
    providers: tuple[str, ...] = ("runpod", "wavespeed", "jiekou", "novita", "vibedream"),
    render_shared: bool = True,
    output_size_bytes: int | None = None,
    seed: int = 0,
) -> dict:
    timing = {
        "latency_min_s": latency_min_s,
        "latency_max_s": latency_min_s if latency_max_s is None else latency_max_s,
        "max_concurrency": max_concurrency,
        "output_size_bytes": output_size_bytes,
    }
    cache = os.path.join(tempfile.gettempdir(), "seedance-bench-render-cache")
    return {
        "seed": seed,
        "providers": {p: timing for p in providers},
        "render_shared": render_shared,
        "render_cache_dir": cache,
    }


def die_with_parent() -> None:
    """Linux: the simulator gets SIGTERM when the benchmark process dies (no orphans after a kill)."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:
        pass


class SimProcess:
    """``seedance-pipeline simulate`` in its own process (so its CPU and memory are not ours)."""

    def __init__(self, config: dict):
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        fd, self._config_path = tempfile.mkstemp(prefix="seedance-bench-sim-", suffix=".json")
        with os.fdopen(fd, "w") as fh:
            json.dump(config, fh)
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from seedance_pipeline.cli import main; main()",
                "simulate",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--config",
                self._config_path,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            preexec_fn=die_with_parent,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{self.base_url}/_sim/stats", timeout=1).raise_for_status()
                break
            except httpx.HTTPError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                    self.stop()
                    raise RuntimeError(f"the simulator did not start: {err[-2000:]}") from None
                time.sleep(0.1)

    def url(self, provider: str) -> str:
        return f"{self.base_url}/{provider}"

    def stats(self) -> dict:
        return httpx.get(f"{self.base_url}/_sim/stats", timeout=60).json()

    def tasks(self) -> list[dict]:
        return httpx.get(f"{self.base_url}/_sim/tasks", timeout=60).json()["tasks"]

    def put_asset(self, name: str, data: bytes) -> str:
        resp = httpx.put(f"{self.base_url}/_sim/assets/{name}", content=data, timeout=30)
        resp.raise_for_status()
        return self.base_url + resp.json()["path"]

    def cpu_s(self) -> float | None:
        try:
            import psutil

            t = psutil.Process(self.proc.pid).cpu_times()
            return t.user + t.system
        except Exception:
            return None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stderr:
            self.proc.stderr.close()
        with suppress(FileNotFoundError):
            os.unlink(self._config_path)

    def __enter__(self) -> SimProcess:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def png(i: int, size: tuple[int, int] = (640, 360)) -> bytes:
    """A small, valid, distinct PNG (distinct bytes = distinct request fingerprints)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", size, ((i * 37) % 256, (i // 256 * 59) % 256, (i * 11 + 90) % 256)).save(buf, format="PNG")
    return buf.getvalue()


def prompt_yaml(
    provider: str,
    *,
    duration: int = 4,
    resolution: str = "480p",
    audio: bool = False,
    images: str = "*",
    text: str = "A slow pan across the scene.",
) -> str:
    return (
        f'text: "{text}"\nimages: ["{images}"]\nprovider: {provider}\nduration: {duration}\n'
        f'resolution: {resolution}\naspect_ratio: "16:9"\ngenerate_audio: {"true" if audio else "false"}\n'
        "camera_fixed: false\nseed: 1\n"
    )


@contextmanager
def quiet_dagster():
    import logging
    import warnings

    import dagster as dg

    warnings.filterwarnings("ignore", category=dg.BetaWarning)
    warnings.filterwarnings("ignore", category=dg.PreviewWarning)
    logging.getLogger("dagster").setLevel(logging.ERROR)
    yield


def _proc_cpu_s(stat_path: str, *, children: bool = False) -> float | None:
    """user+sys seconds from a Linux ``/proc/.../stat`` (with ``children``: also of its reaped children)."""
    try:
        with open(stat_path) as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    ticks = int(fields[11]) + int(fields[12]) + ((int(fields[13]) + int(fields[14])) if children else 0)
    return ticks / os.sysconf("SC_CLK_TCK")


def pids_cpu_s(pids: list[int]) -> float:
    """user+sys seconds of these running processes (e.g. moto's server and the latency proxy of an S3 run)."""
    return sum(_proc_cpu_s(f"/proc/{pid}/stat") or 0.0 for pid in pids)


class ThreadCPU:
    """CPU seconds of this process's threads while it runs, grouped by what they do (Linux ``/proc``).

    Threads are sampled every ``interval_s`` (each sample keeps a thread's latest total, so a thread that
    ends loses at most one interval) and named from ``threading``: the thread that started the sampler
    is Dagster's step thread (it stores every event), ``seedance-clips-*`` is the clips production (our
    provider I/O), ``seedance-probe*`` the probes (every frame decoded, content sampled), ``asyncio_*`` /
    ``ThreadPoolExecutor-*`` the workers the production hands planning and storage writes to.
    """

    def __init__(self, interval_s: float = 0.1):
        import threading

        self._interval, self._stop = interval_s, threading.Event()
        self._main = threading.get_native_id()
        self._start: dict[int, float] = {}
        self._last: dict[int, float] = {}
        self._names: dict[int, str] = {}
        self._started = False
        self._thread = threading.Thread(target=self._run, name="bench-thread-cpu", daemon=True)

    def _sample(self) -> None:
        import threading

        names = {t.native_id: t.name for t in threading.enumerate()}
        for tid_s in os.listdir("/proc/self/task"):
            tid = int(tid_s)
            cpu = _proc_cpu_s(f"/proc/self/task/{tid}/stat")
            if cpu is not None:
                self._last[tid] = cpu
                self._start.setdefault(tid, cpu if not self._started else 0.0)
                # A new thread can be in /proc before ``threading`` lists it: keep the name once it is known.
                if tid in names:
                    self._names[tid] = names[tid]
                else:
                    self._names.setdefault(tid, "?")

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self._sample()

    def __enter__(self) -> ThreadCPU:
        self._sample()  # threads alive now count from here; threads born later from zero
        self._started = True
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    def role(self, tid: int) -> str:
        name = self._names.get(tid, "?")
        if tid == self._main:
            return "dagster"
        if name.startswith("seedance-clips"):
            return "production"
        if name.startswith("seedance-probe"):
            return "probes"
        if name.startswith(("asyncio_", "ThreadPoolExecutor")):
            return "workers"
        if name == "bench-thread-cpu":
            return "sampler"
        return "other"

    def by_role(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for tid, cpu in self._last.items():
            role = self.role(tid)
            out[role] = out.get(role, 0.0) + cpu - self._start.get(tid, 0.0)
        return out


def postmaster_cpu_s(data_dir: str) -> float | None:
    """CPU seconds of a PostgreSQL server: the postmaster and every backend it has reaped (Dagster opens a
    connection per storage call, so backends come and go) plus those still running."""
    try:
        with open(os.path.join(data_dir, "postmaster.pid")) as fh:
            pid = int(fh.readline())
    except (OSError, ValueError):
        return None
    total = _proc_cpu_s(f"/proc/{pid}/stat", children=True)
    if total is None:
        return None
    try:
        import psutil

        for child in psutil.Process(pid).children():
            with suppress(psutil.Error):
                t = child.cpu_times()
                total += t.user + t.system
    except Exception:
        pass
    return total
