"""Benchmark 2: status requests per clip and detection delay, ours vs the official SDKs vs a naive loop.

N tasks per client, latency drawn uniformly from [L_min, L_max] (full: 60-120 s; quick: scaled by 0.1
to 6-12 s, every client's poll timing scaled by the same factor, and said so). All clients run at the
same time, each against ITS OWN simulator process (so request counters never mix):

- ours/wavespeed, ours/runpod: the project's engine (``generate_clip``: submit, ``PollSchedule``, download)
  with the settings the resource uses for a real provider (prior 60 s, scaled in quick mode);
- wavespeed SDK: ``wavespeed.Client(api_key, base_url=...).run(model, input)`` (polls every 1 s), in threads;
- runpod SDK: ``runpod.Endpoint(id).run(input)`` then ``job.output(timeout=...)`` (polls every 1 s), in threads;
- naive: POST then GET every 2 s (the providers' example loop), WaveSpeed protocol, in threads.

Status requests per clip = the simulator's status counter / N. Detection delay = when the client saw the
task succeed minus the simulator's ``finished_at`` for that task (``/_sim/tasks``), as a share of the
task's generation time.
"""

from __future__ import annotations

import asyncio
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from benchmarks.common import SimProcess, loadavg, png, report, sim_config

WS_MODEL = "bytedance/seedance-v1.5-pro/image-to-video"
RUNPOD_ENDPOINT = "seedance-v1-5-pro-i2v"


def _input(image_url: str, i: int) -> dict:
    return {
        "prompt": f"bench clip {i}",
        "image": image_url,
        "duration": 4,
        "resolution": "480p",
        "aspect_ratio": "16:9",
        "generate_audio": False,
        "camera_fixed": False,
        "seed": i,
    }


def run_ours(sim: SimProcess, provider: str, n: int, image_url: str, prior_s: float, scale: float) -> dict[str, float]:
    import tempfile

    import fsspec

    from seedance_pipeline.clip.prepare import build_request, prepare
    from seedance_pipeline.core.images import inspect_image
    from seedance_pipeline.providers import get_adapter
    from seedance_pipeline.providers.engine import ClientSettings, ProviderClient
    from seedance_pipeline.providers.states import TaskState

    img = inspect_image(image_url, png(1))
    seen: dict[str, float] = {}
    settings = ClientSettings(
        expected_latency_s=prior_s, max_in_flight=n, min_poll_interval_s=1.0 * scale, max_poll_interval_s=30.0 * scale
    )

    async def main():
        fs = fsspec.filesystem("file")
        with tempfile.TemporaryDirectory() as tmp:
            async with ProviderClient(
                get_adapter(provider), "bench", base_url=sim.url(provider), settings=settings
            ) as client:

                async def one(i: int):
                    req = build_request(
                        prompt=f"bench clip {i}",
                        image=image_url,
                        duration=4,
                        resolution="480p",
                        aspect_ratio="16:9",
                        generate_audio=False,
                        camera_fixed=False,
                        seed=i,
                    )
                    prepared = prepare(get_adapter(provider), req, images={image_url: img})
                    from seedance_pipeline.clip.generate import generate_clip

                    def update(snap):
                        if snap.state is TaskState.SUCCEEDED and snap.task_id not in seen:
                            seen[snap.task_id] = time.time()

                    await generate_clip(client, prepared, fs, f"{tmp}/{i}.mp4", on_update=update)

                await asyncio.gather(*(one(i) for i in range(n)))

    asyncio.run(main())
    return seen


def run_wavespeed_sdk(sim: SimProcess, n: int, image_url: str, scale: float) -> dict[str, float]:
    import wavespeed

    client = wavespeed.Client(api_key="bench", base_url=sim.url("wavespeed"))
    seen: dict[str, float] = {}
    lock = threading.Lock()

    def one(i: int):
        out = client.run(WS_MODEL, _input(image_url, i), poll_interval=1.0 * scale)
        done = time.time()
        task_id = out["outputs"][0].rsplit("/", 1)[-1].split(".mp4")[0]
        with lock:
            seen[task_id] = done

    with ThreadPoolExecutor(n) as pool:
        list(pool.map(one, range(n)))
    return seen


def run_runpod_sdk(sim: SimProcess, n: int, image_url: str, scale: float) -> dict[str, float]:
    import runpod
    from runpod.endpoint import runner

    runpod.api_key = "bench"
    runpod.endpoint_url_base = f"{sim.url('runpod')}/v2"
    seen: dict[str, float] = {}
    lock = threading.Lock()
    sleep = runner.time.sleep

    def one(i: int):
        job = runpod.Endpoint(RUNPOD_ENDPOINT).run(_input(image_url, i))
        job.output(timeout=3600)  # polls /status every 1 s until final, as its docs show
        done = time.time()
        with lock:
            seen[job.job_id] = done

    # runpod-python sleeps a fixed 1 s between polls; quick mode scales that like everyone else's timing.
    if scale != 1.0:
        runner.time = _ScaledTime(scale)
    try:
        with ThreadPoolExecutor(n) as pool:
            list(pool.map(one, range(n)))
    finally:
        runner.time = __import__("time")
    del sleep
    return seen


class _ScaledTime:
    def __init__(self, scale: float):
        self.scale = scale

    def sleep(self, s: float) -> None:
        time.sleep(s * self.scale)

    def __getattr__(self, name):
        return getattr(time, name)


def run_naive(sim: SimProcess, n: int, image_url: str, every_s: float) -> dict[str, float]:
    seen: dict[str, float] = {}
    lock = threading.Lock()
    headers = {"Authorization": "Bearer bench"}

    def one(i: int):
        with httpx.Client(base_url=sim.url("wavespeed"), headers=headers, timeout=60) as c:
            task_id = c.post(f"/api/v3/{WS_MODEL}", json=_input(image_url, i)).json()["data"]["id"]
            while True:
                time.sleep(every_s)
                data = c.get(f"/api/v3/predictions/{task_id}/result").json()["data"]
                if data["status"] in ("completed", "failed"):
                    break
            done = time.time()
        with lock:
            seen[task_id] = done

    with ThreadPoolExecutor(n) as pool:
        list(pool.map(one, range(n)))
    return seen


def _figures(name: str, sim: SimProcess, provider: str, n: int, seen: dict[str, float], targets: bool, quick: bool):
    status = sim.stats()["requests"][provider]["status"]
    tasks = {t["id"]: t for t in sim.tasks() if t["provider"] == provider}
    shares, delays = [], []
    for task_id, saw in seen.items():
        t = tasks.get(task_id)
        if not t or t["finished_at"] is None:
            continue
        delay = saw - t["finished_at"]
        delays.append(delay)
        shares.append(delay / max(1e-9, t["done_at"] - t["starts_at"]))
    scaled = " (quick: latencies and poll timing scaled x0.1)" if quick else ""
    report(
        "2",
        f"{name}: status requests per clip",
        status / n,
        "",
        "<= 6" if targets else None,
        note=f"{status} status requests for {n} tasks, {len(seen)} seen done{scaled}",
    )
    if shares:
        report(
            "2",
            f"{name}: detection delay, mean share of task time",
            100 * statistics.mean(shares),
            "%",
            "<= 10" if targets else None,  # issue 16: a mean of at most 10 % of the task
            note=f"max {100 * max(shares):.1f} %, mean {statistics.mean(delays):.2f} s, max {max(delays):.2f} s",
        )


def run(quick: bool = False) -> None:
    import logging

    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    import runpod  # noqa: F401  (it configures the root logger on import: INFO to stderr)

    # Undo that, or every later INFO line of any library (Alembic's migrations in benchmark 5) is printed.
    root.setLevel(level)
    root.handlers[:] = handlers
    for name in ("httpx", "httpcore", "urllib3", "runpod"):
        logging.getLogger(name).setLevel(logging.WARNING)
    n = 20
    scale = 0.1 if quick else 1.0
    lo, hi = 60 * scale, 120 * scale
    prior = 60.0 * scale
    print(
        f"[2] status requests per clip and detection delay, N={n}, latency U({lo:g}, {hi:g}) s, all clients "
        f"concurrently, one simulator process each; {loadavg()}",
        flush=True,
    )
    names = ["ours/wavespeed", "ours/runpod", "wavespeed SDK", "runpod SDK", f"naive poll every {2 * scale:g} s"]
    sims = {name: SimProcess(sim_config(lo, hi, seed=k)) for k, name in enumerate(names)}
    try:
        urls = {name: sim.put_asset("bench.png", png(1)) for name, sim in sims.items()}
        jobs = {
            "ours/wavespeed": lambda: run_ours(
                sims["ours/wavespeed"], "wavespeed", n, urls["ours/wavespeed"], prior, scale
            ),
            "ours/runpod": lambda: run_ours(sims["ours/runpod"], "runpod", n, urls["ours/runpod"], prior, scale),
            "wavespeed SDK": lambda: run_wavespeed_sdk(sims["wavespeed SDK"], n, urls["wavespeed SDK"], scale),
            "runpod SDK": lambda: run_runpod_sdk(sims["runpod SDK"], n, urls["runpod SDK"], scale),
            names[4]: lambda: run_naive(sims[names[4]], n, urls[names[4]], 2.0 * scale),
        }
        t0 = time.monotonic()
        with ThreadPoolExecutor(len(jobs)) as pool:
            futures = {name: pool.submit(fn) for name, fn in jobs.items()}
            results = {name: f.result() for name, f in futures.items()}
        print(f"    all clients done in {time.monotonic() - t0:.0f} s; {loadavg()}", flush=True)
        provider = {
            "ours/wavespeed": "wavespeed",
            "ours/runpod": "runpod",
            "wavespeed SDK": "wavespeed",
            "runpod SDK": "runpod",
            names[4]: "wavespeed",
        }
        for name in names:
            _figures(name, sims[name], provider[name], n, results[name], name.startswith("ours"), quick)
    finally:
        for sim in sims.values():
            sim.stop()
