"""Benchmarks 1 and 3: throughput against the ideal N x L / C, and orchestrator CPU per clip.

The real Dagster path: the embedded default instance in a temporary folder (SQLite, with the project's
event log of ``seedance_pipeline/event_logs``, as ``make demo`` writes it), local storage, the sources
materialized first (not timed), then ONE ``clips_job`` run over all N partitions (what ``run`` and a
single-run backfill do, ``BackfillPolicy.single_run``), executed in this process. The simulator runs
in its own process with a fixed latency L, a provider cap C (``max_concurrency``) and shared renders
(one real MP4 per shape). Timed: launch of the run to its end, by which time every clip is stored,
probed by both checks (``plays_to_end``, ``matches_request``) and recorded in the instance.

CPU per clip (benchmark 3) = user+sys of this process during that run / N (the simulator excluded).

"One run per partition" (the default multi-run backfill) is measured two ways for a small K:
- K in-process runs one after another (``execute_in_process(partition_key=...)``), and
- one ``dagster asset materialize`` subprocess run of a partition whose clip is already stored
  (no provider request), i.e. the fixed cost of a run as the daemon would launch it.
The figure for N is extrapolated from the subprocess cost: N runs of that CPU cost on this machine's
cores, or the provider bound, whichever is slower. Printed as an extrapolation.
"""

from __future__ import annotations

import contextlib
import io
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks.common import (
    SimProcess,
    ThreadCPU,
    cpu_s,
    die_with_parent,
    loadavg,
    pids_cpu_s,
    png,
    postmaster_cpu_s,
    prompt_yaml,
    quiet_dagster,
    report,
    reset_peak_rss,
    sim_config,
    status_mb,
)

PROVIDER = "novita"  # accepts images as data URIs: no image hosting in the measured path


def _setup(root: Path, n: int, instance, storage, prompt: str = "bench", image_of=png):
    import dagster as dg

    from seedance_pipeline.definitions import build_definitions  # noqa: F401  (import cost outside timing)
    from seedance_pipeline.lineage.partitions import IMAGES, PROMPTS

    images = [f"img{i:05d}" for i in range(n)]
    for i, key in enumerate(images):
        storage.write_bytes(storage.path("images", f"{key}.png"), image_of(i))
    storage.write_bytes(storage.path("prompts", f"{prompt}.yaml"), prompt_yaml(PROVIDER).encode())
    instance.add_dynamic_partitions(IMAGES, images)
    instance.add_dynamic_partitions(PROMPTS, [prompt])
    return images, dg


def _execute(defs, instance, job, **kw):
    config = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
    run_config = kw.pop("run_config", {})
    return defs.resolve_job_def(job).execute_in_process(
        instance=instance, raise_on_error=False, run_config={**config, **run_config}, **kw
    )


def _one_planned_event_per_run():
    """For the untimed setup runs only: Dagster writes one planned event per run instead of one per
    partition (about 10 ms each on SQLite, 10 s of setup at N = 1000). The timed clips run keeps the default."""
    from unittest import mock

    return mock.patch.dict(os.environ, {"DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS": "1"})


def _as_the_cli_runs():
    """The timed run stores its planned events as `seedance-pipeline run`'s runs do (cli/runner.py)."""
    from unittest import mock

    from seedance_pipeline.event_logs import PLANNED_EVENT_BATCH

    return mock.patch.dict(os.environ, {"DAGSTER_EVENT_BATCH_SIZE": PLANNED_EVENT_BATCH})


def _decode_ms(storage, image: str, repeat: int = 15) -> float:
    """CPU (user+sys of this process) of the decode ``plays_to_end`` is defined by, for a clip the run stored: every
    frame, one decoder thread, no content sampling and no preview (``probe_video``'s defaults); the median of
    ``repeat``, measured after the run, in a quiet process (the same decode inside a busy run costs more)."""
    import statistics

    from seedance_pipeline.clip.probe import probe_video

    data = storage.read_bytes(storage.clip_path("bench", image))
    probe_video(io.BytesIO(data))
    times = []
    for _ in range(repeat):
        c0 = cpu_s()
        probe_video(io.BytesIO(data))
        times.append(cpu_s() - c0)
    return 1000 * statistics.median(times)


def _checked(instance, run_id: str) -> tuple[int, int]:
    """(clips stored, file checks passed). Every check is evaluated and recorded (its cost is in the figures), but
    only plays_to_end and matches_request are counted: with ``render_shared`` a task's clip is the one render of
    its shape, made from another image, so the content checks (resembles_source) judge a stand-in."""
    from dagster._core.events import DagsterEventType

    from seedance_pipeline.clip.checks import FILE_CHECKS

    mats = instance.get_records_for_run(run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION, limit=100000).records
    checks = instance.get_records_for_run(run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION, limit=100000).records
    evaluations = [r.event_log_entry.dagster_event.event_specific_data for r in checks]
    passed = sum(1 for e in evaluations if e.check_name in FILE_CHECKS and e.passed)
    return len(mats), passed


@contextlib.contextmanager
def _instance(kind: str, tmp: str):
    """(instance, CPU seconds of its database server so far, or None when it runs in this process).

    ``sqlite``: the embedded default in a folder (what `seedance-pipeline run` writes: SQLite, our event log).
    ``postgres``: a private PostgreSQL cluster with deploy/dagster.yaml's storage classes, the production
    storage (its server's CPU is orchestration too).
    ``sqlite-stock`` / ``postgres-stock``: the same with Dagster's own event log classes, for comparison.
    ``memory``: Dagster's ephemeral instance (SQLite in memory: no per-event connect, commit and fsync),
    to show what the orchestration costs apart from the event store."""
    import dagster as dg

    from seedance_pipeline.event_logs.instance_config import embedded_instance_config

    if kind == "memory":
        yield dg.DagsterInstance.ephemeral(), lambda: None
    elif kind.startswith("postgres"):
        with postgres_instance(tmp, stock=kind.endswith("-stock")) as (instance, data_dir):
            yield instance, lambda: postmaster_cpu_s(data_dir)
    else:
        embedded = {} if kind.endswith("-stock") else embedded_instance_config(Path(tmp))
        with dg.instance_for_test(temp_dir=tmp, overrides=embedded) as instance:
            yield instance, lambda: None


PG_BIN = "/usr/lib/postgresql/15/bin"


def postgres_available() -> bool:
    try:
        import dagster_postgres  # noqa: F401
    except ImportError:
        return False
    import pwd

    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return False
    return os.path.exists(os.path.join(PG_BIN, "initdb"))


@contextlib.contextmanager
def postgres_instance(tmp: str, *, stock: bool = False):
    """A private PostgreSQL cluster in ``tmp`` (initdb + pg_ctl as the postgres user) and a Dagster
    instance on it with deploy/dagster.yaml's storage classes (``stock``: dagster-postgres' own, for comparison);
    yields (instance, the cluster's data folder)."""
    import dagster as dg
    import yaml

    from benchmarks.common import free_port

    data, port = os.path.join(tmp, "pg"), free_port()
    os.makedirs(data)
    os.chmod(tmp, 0o777)
    import shutil

    shutil.chown(data, "postgres", "postgres")
    as_pg = ["runuser", "-u", "postgres", "--"]
    subprocess.run(
        [*as_pg, f"{PG_BIN}/initdb", "-D", data, "-A", "trust", "-U", "postgres"], check=True, capture_output=True
    )
    subprocess.run(
        [
            *as_pg,
            f"{PG_BIN}/pg_ctl",
            "-D",
            data,
            "-o",
            f"-p {port} -k {data} -c listen_addresses=127.0.0.1",
            "-w",
            "start",
            "-l",
            os.path.join(data, "log"),
        ],
        check=True,
        capture_output=True,
    )
    try:
        home = os.path.join(tmp, "pg-home")
        os.makedirs(home)
        db = {"postgres_url": f"postgresql+psycopg2://postgres@127.0.0.1:{port}/postgres"}
        config: dict = {"telemetry": {"enabled": False}}
        if stock:
            config["storage"] = {"postgres": db}
        else:  # the storage classes of deploy/dagster.yaml, on this cluster
            deploy = yaml.safe_load((Path(__file__).resolve().parents[1] / "deploy" / "dagster.yaml").read_text())
            for part in ("run_storage", "event_log_storage", "schedule_storage"):
                config[part] = {**{k: deploy[part][k] for k in ("module", "class")}, "config": db}
        with open(os.path.join(home, "dagster.yaml"), "w") as fh:
            yaml.safe_dump(config, fh)
        with dg.DagsterInstance.from_config(home) as instance:
            yield instance, data
    finally:
        subprocess.run([*as_pg, f"{PG_BIN}/pg_ctl", "-D", data, "-m", "immediate", "stop"], capture_output=True)


DAY_BUDGET_USD = 1e6  # a daily budget no run reaches: what the check costs, not what it stops
S3_LATENCY_S = 0.03  # added to every S3 request: a real S3 round trip, which a server on loopback lacks
S3_LOG = "s3-requests.log"  # the proxy's line per request (S3FaultProxy log_path)


def _s3_lines(tmp: str) -> list[str]:
    path = Path(tmp) / S3_LOG
    return path.read_text().splitlines() if path.exists() else []


def s3_requests_by_kind(lines: list[str]) -> dict[str, int]:
    """``METHOD folder`` -> count: the top folder under the storage root with the file's extension
    (``clips/*.mp4``), two levels for ``tasks/`` and ``state/``; a listing counts under its prefix."""
    from urllib.parse import parse_qs, unquote, urlsplit

    out: dict[str, int] = {}
    for line in lines:
        method, _, target = line.partition(" ")
        url = urlsplit(target)
        query = parse_qs(url.query)
        key = unquote(query["prefix"][0]) if "prefix" in query else unquote(url.path).lstrip("/").partition("/")[2]
        kind = "LIST" if "list-type" in query else method
        parts = [p for p in key.split("/")[1:] if p]  # after "storage"
        if not parts:
            folder = "(root)"
        elif parts[0] in ("tasks", "state") and len(parts) > 2:
            folder = f"{parts[0]}/{parts[1]}/*"
        elif len(parts) > 1:
            suffix = parts[-1].rpartition(".")[2] if "." in parts[-1] else ""
            folder = f"{parts[0]}/*" + (f".{suffix}" if suffix and len(suffix) <= 5 else "")
        else:
            folder = parts[0]
        label = f"{kind} {folder}"
        out[label] = out.get(label, 0) + 1
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


@contextlib.contextmanager
def _storage(kind: str, tmp: str, servers: list[int] | None = None, direct: list[str] | None = None):
    """``local``: a folder. ``s3``: moto's S3 server behind ``S3FaultProxy`` adding ``S3_LATENCY_S`` to every
    request (``s3-loopback``: the same proxy adding nothing), each in a process of its own (their CPU is not ours;
    their pids are appended to ``servers``, moto's own URL, for a setup's bulk writes, to ``direct``), stopped
    afterwards."""
    from seedance_pipeline.storage.resource import SeedanceStorage

    if kind == "local":
        yield SeedanceStorage(url=str(Path(tmp) / "storage"))
        return
    import boto3

    from benchmarks.common import free_port
    from seedance_pipeline_tests.s3server import dummy_aws_environ

    with dummy_aws_environ():
        port = free_port()
        moto = subprocess.Popen(
            [str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1", "-p", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=die_with_parent,
        )
        proxy = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import sys, time\nfrom seedance_pipeline_tests.s3faults import S3FaultProxy\n"
                "print(S3FaultProxy(sys.argv[1], latency_s=float(sys.argv[2]), log_path=sys.argv[3]).url, flush=True)"
                "\ntime.sleep(86400)",
                f"http://127.0.0.1:{port}",
                str(0.0 if kind == "s3-loopback" else S3_LATENCY_S),
                str(Path(tmp) / S3_LOG),
            ],
            stdout=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).resolve().parents[1],
            preexec_fn=die_with_parent,
        )
        if servers is not None:
            servers += [moto.pid, proxy.pid]
        if direct is not None:
            direct.append(f"http://127.0.0.1:{port}")
        try:
            endpoint = proxy.stdout.readline().strip()
            deadline = time.monotonic() + 30
            while True:  # moto's server takes a moment to listen
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)
            boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="bench")
            yield SeedanceStorage(url="s3://bench/storage", endpoint_url=endpoint)
        finally:
            for proc in (proxy, moto):
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:  # a clean clone's test once left the proxy alive after TERM
                    proc.kill()
                    proc.wait()


def one_run(
    n: int,
    latency: float,
    cap: int,
    *,
    profile: str | None = None,
    instance_kind: str = "sqlite",
    storage_kind: str = "local",
    day_budget_usd: float | None = None,
    image_of: Callable[[int], bytes] = png,
) -> dict:
    """N clips in one clips_job run; returns wall, cpu, requests, and this process's RSS before the run and its peak
    during it. ``day_budget_usd``: under that daily budget (every intent then checked against the day's records in
    storage, as ``SEEDANCE_BUDGET_PER_DAY_USD`` does). ``image_of(i)``: the i-th source image's file."""

    from seedance_pipeline.definitions import build_definitions
    from seedance_pipeline.lineage.partitions import clip_range_tags, range_tags
    from seedance_pipeline.providers.resource import SeedanceProviders

    s3_servers: list[int] = []  # moto's server and the proxy, whose CPU shares the machine with this run
    with (
        tempfile.TemporaryDirectory(prefix="seedance-bench1-") as tmp,
        quiet_dagster(),
        SimProcess(sim_config(latency, max_concurrency=cap, providers=(PROVIDER,))) as sim,
        _instance(instance_kind, tmp) as (instance, server_cpu_s),
        _storage(storage_kind, tmp, s3_servers) as storage,
    ):
        root = Path(tmp)
        images, _ = _setup(root, n, instance, storage, image_of=image_of)
        providers = SeedanceProviders(
            simulator_url=sim.base_url, simulator_latency_s=latency, max_in_flight={PROVIDER: cap}
        )
        from seedance_pipeline.ledger.budget import SpendPolicy

        spend = SpendPolicy(per_day_usd=day_budget_usd) if day_budget_usd is not None else None
        defs = build_definitions(storage, providers, spend)
        with _one_planned_event_per_run():
            src = _execute(defs, instance, "source_images_job", tags=range_tags(images[0], images[-1]))
            prm = _execute(defs, instance, "prompts_job", partition_key="bench")
        if not (src.success and prm.success):
            from seedance_pipeline.cli.run_report import failure_lines

            raise RuntimeError(failure_lines(instance, src.run_id, "src") + failure_lines(instance, prm.run_id, "prm"))
        # warm the simulator's shared render for this shape so the first wave is not a render wait
        # (a real provider has no such cost; the render is a simulator artefact)
        _warm(sim, images[0], storage)
        sim_cpu0 = sim.cpu_s()
        profiler = None
        if profile:
            from pyinstrument import Profiler

            profiler = Profiler(async_mode="disabled")
            profiler.start()
        server0 = server_cpu_s()
        s3_cpu0 = pids_cpu_s(s3_servers)
        s3_before = len(_s3_lines(tmp))
        rss_before = reset_peak_rss()
        with ThreadCPU() as threads, _as_the_cli_runs():
            c0, t0, w0 = cpu_s(), time.monotonic(), time.time()
            result = _execute(
                defs,
                instance,
                "clips_job",
                tags=clip_range_tags(images, ["bench"]),
                run_config={"ops": {"clips": {"config": {"mode": "all"}}}},
            )
            wall, cpu = time.monotonic() - t0, cpu_s() - c0
        peak_rss = status_mb("VmHWM")
        server1 = server_cpu_s()
        s3_cpu = pids_cpu_s(s3_servers) - s3_cpu0
        s3_run = _s3_lines(tmp)[s3_before:]
        if profiler:
            profiler.stop()
            Path(profile).write_text(profiler.output_text(unicode=False, color=False, show_all=False))
            profiler.last_session.save(str(Path(profile).with_suffix(".pyisession")))
        stored, passed = _checked(instance, result.run_id)
        decode_ms = _decode_ms(storage, images[0])
        s3_capacity = None if storage.is_local else _s3_capacity(storage, cap, s3_servers)
        stats = sim.stats()["requests"][PROVIDER]
        tasks = [t for t in sim.tasks() if t["prompt"] != "warm-up"]
        first_submit = min(t["created_at"] for t in tasks) - w0
        last_done = max(t["finished_at"] or t["done_at"] for t in tasks) - w0
        busy = sum(t["done_at"] - t["starts_at"] for t in tasks)
        span = (w0 + wall) - min(t["created_at"] for t in tasks)
        sim_cpu = (sim.cpu_s() or 0) - (sim_cpu0 or 0)
    return {
        "n": n,
        "wall": wall,
        "cpu": cpu,
        "ok": result.success,
        "stored": stored,
        "checks_passed": passed,
        "status": stats["status"] - 1,
        "submit": stats["submit"] - 1,
        "sim_cpu": sim_cpu,
        "first_submit_s": first_submit,
        "last_done_s": last_done,
        "tail_s": wall - last_done,
        "slot_use": busy / (cap * max(1e-9, last_done - first_submit)),
        "span": span,
        "threads": threads.by_role(),
        "decode_ms": decode_ms,
        "server_cpu": None if server0 is None else server1 - server0,
        "s3_server_cpu": s3_cpu,
        "s3_requests": len(s3_run),
        "s3_by_kind": s3_requests_by_kind(s3_run),
        "s3_capacity": s3_capacity,
        "rss_before_mb": rss_before,
        "peak_rss_mb": peak_rss,
    }


def _s3_capacity(storage, clients: int, servers: list[int]) -> dict:
    """What the S3 emulator (moto's server behind the latency proxy, Python processes on this machine's cores)
    gives, measured after the run: one 1 KB PUT alone (median of 20), and ``clients`` threads each writing 3 PUTs
    one after the other, as one wave of intents does (a run's slots all start at once), with the servers' CPU."""
    import statistics
    from concurrent.futures import ThreadPoolExecutor

    data = b"x" * 1024

    def put(i: int) -> float:
        t = time.monotonic()
        storage.write_bytes(storage.path("capacity", f"{i}.json"), data)
        return time.monotonic() - t

    alone = statistics.median(put(i) for i in range(20))
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(put, range(clients)))  # the connections opened first, as a run's are
        cpu0, t0 = pids_cpu_s(servers), time.monotonic()
        list(pool.map(lambda i: sum(put(i * 3 + k) for k in range(3)), range(clients)))
        wall, cpu = time.monotonic() - t0, pids_cpu_s(servers) - cpu0
    return {"put_s": alone, "wave_s": wall, "server_cpu_per_put_s": cpu / (3 * clients), "clients": clients}


def _warm(sim: SimProcess, image_key: str, storage) -> None:
    """One task of the benchmark's shape through the same client code, outside the timed run."""
    import asyncio

    from seedance_pipeline.clip.prepare import build_request, prepare
    from seedance_pipeline.core.images import inspect_image
    from seedance_pipeline.providers import get_adapter
    from seedance_pipeline.providers.engine import ClientSettings, ProviderClient

    path = storage.path("images", f"{image_key}.png")
    img = inspect_image(path, storage.read_bytes(path))
    req = build_request(
        prompt="warm-up",
        image=img.ref,
        duration=4,
        resolution="480p",
        aspect_ratio="16:9",
        generate_audio=False,
        camera_fixed=False,
        seed=1,
    )
    prepared = prepare(get_adapter(PROVIDER), req, images={img.ref: img})

    async def go():
        async with ProviderClient(
            get_adapter(PROVIDER), "bench", base_url=sim.url(PROVIDER), settings=ClientSettings(expected_latency_s=0.5)
        ) as client:
            snap = await client.submit(prepared.wire)
            await client.wait(snap)

    asyncio.run(go())


def per_partition_runs(k: int, latency: float, cap: int) -> dict:
    """K one-partition runs in-process, one after another, plus one subprocess run's fixed cost."""
    import dagster as dg

    from seedance_pipeline.definitions import build_definitions
    from seedance_pipeline.lineage.partitions import clip_key, range_tags
    from seedance_pipeline.providers.resource import SeedanceProviders
    from seedance_pipeline.storage.resource import SeedanceStorage

    with (
        tempfile.TemporaryDirectory(prefix="seedance-bench1b-") as tmp,
        quiet_dagster(),
        SimProcess(sim_config(latency, max_concurrency=cap, providers=(PROVIDER,))) as sim,
    ):
        home = Path(tmp) / "home"
        home.mkdir()
        (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
        with dg.DagsterInstance.from_config(str(home)) as instance:
            storage = SeedanceStorage(url=str(Path(tmp) / "storage"))
            images, _ = _setup(Path(tmp), k, instance, storage)
            providers = SeedanceProviders(
                simulator_url=sim.base_url, simulator_latency_s=latency, max_in_flight={PROVIDER: cap}
            )
            defs = build_definitions(storage, providers)
            assert _execute(defs, instance, "source_images_job", tags=range_tags(images[0], images[-1])).success
            assert _execute(defs, instance, "prompts_job", partition_key="bench").success
            _warm(sim, images[0], storage)
            c0, t0 = cpu_s(), time.monotonic()
            ok = 0
            for key in images:
                ok += _execute(
                    defs,
                    instance,
                    "clips_job",
                    partition_key=str(clip_key(key, "bench")),
                    run_config={"ops": {"clips": {"config": {"mode": "all"}}}},
                ).success
            wall, cpu = time.monotonic() - t0, cpu_s() - c0
        # One run as the daemon launches it: a fresh process (`dagster asset materialize`), for a clip
        # already stored (mode all reuses it: no provider request), i.e. the fixed cost of a run.
        env = {
            **os.environ,
            "DAGSTER_HOME": str(home),
            "SEEDANCE_STORAGE_URL": str(Path(tmp) / "storage"),
            f"SEEDANCE_{PROVIDER.upper()}_BASE_URL": sim.url(PROVIDER),
        }
        exe = str(Path(sys.executable).with_name("dagster"))
        t1 = time.monotonic()
        before = _children_cpu()
        proc = subprocess.run(
            [
                exe,
                "asset",
                "materialize",
                "-m",
                "seedance_pipeline.definitions",
                "--select",
                "clips",
                "--partition",
                str(clip_key(images[0], "bench")),
            ],
            env=env,
            capture_output=True,
            text=True,
        )
        sub_wall, sub_cpu = time.monotonic() - t1, _children_cpu() - before
    return {
        "k": k,
        "wall": wall,
        "cpu": cpu,
        "ok": ok,
        "sub_wall": sub_wall,
        "sub_cpu": sub_cpu,
        "sub_ok": proc.returncode == 0,
        "sub_err": proc.stderr[-500:],
    }


def _children_cpu() -> float:
    import resource

    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def run(quick: bool = False, profile_dir: str | None = None, diagnostics: bool = False) -> None:
    latency, cap = 2.0, 20
    sizes = [50, 200] if quick else [50, 200, 1000]
    print(
        f"[1] throughput vs ideal N*L/C, L={latency:g} s, C={cap}, one clips_job run per N, SQLite instance "
        f"(the embedded default); full mode also PostgreSQL (production) and S3 storage; {loadavg()}",
        flush=True,
    )
    cpu_per_clip = []
    runs: list[tuple[int, str, str, float, float | None]] = [(n, "sqlite", "local", latency, None) for n in sizes]
    if not quick or diagnostics:
        if postgres_available():
            runs.append((200, "postgres", "local", latency, None))
        else:
            print("    (PostgreSQL run skipped: needs Debian's postgresql and dagster-postgres)", flush=True)
        runs.append((100, "sqlite", "s3", latency, None))  # the production storage, where round trips matter
        # The same under a daily budget: each intent is checked against the day's records in S3 (benchmark 10, M21).
        runs.append((100, "sqlite", "s3", latency, DAY_BUDGET_USD))
        # The same at 10 s tasks: S3's cost is per request (the write-ahead records before each submit, the
        # lookups before the first), not per second of task, so it weighs less as tasks get longer.
        runs.append((100, "sqlite", "s3", 10.0, None))
        # The same without the 30 ms: what the round trips cost, against what moto's server and the S3 client cost
        # on the same two cores (the reason the S3 target is missed here, README "On S3, the requests of one clip").
        runs.append((100, "sqlite", "s3-loopback", latency, None))
    if diagnostics:  # --diagnostics: the same N=200 on Dagster's in-memory instance and on Dagster's own event logs
        runs.append((200, "memory", "local", latency, None))
        runs.append((200, "sqlite-stock", "local", latency, None))
        if postgres_available():
            runs.append((200, "postgres-stock", "local", latency, None))
    for n, kind, storage_kind, task_s, budget in runs:
        prof = os.path.join(profile_dir, f"bench1_{kind}_{storage_kind}_n{n}.txt") if profile_dir else None
        r = one_run(n, task_s, cap, profile=prof, instance_kind=kind, storage_kind=storage_kind, day_budget_usd=budget)
        ideal = n * task_s / cap
        good = r["ok"] and r["stored"] == n and r["checks_passed"] == 2 * n
        diagnostic = (
            kind == "memory"
            or kind.endswith("-stock")
            or task_s != latency
            or budget is not None
            or storage_kind == "s3-loopback"
        )
        # The targets: >= 0.85 at N >= 200 on local storage, >= 0.8 on S3 (N = 100).
        target = None if diagnostic else ">= 0.8" if storage_kind == "s3" else ">= 0.85" if n >= 200 else None
        label = {
            "sqlite": f"N={n}",
            "memory": f"N={n}, in-memory instance (diagnostic)",
            "postgres": f"N={n}, PostgreSQL instance",
            "sqlite-stock": f"N={n}, Dagster's own SQLite event log (diagnostic)",
            "postgres-stock": f"N={n}, PostgreSQL, dagster-postgres' own event log (diagnostic)",
        }[kind]
        if storage_kind == "s3":
            label += f", S3 storage (moto + {S3_LATENCY_S * 1000:.0f} ms per request)"
        if storage_kind == "s3-loopback":
            label += ", S3 storage (moto, no added latency; comparison)"
        if budget is not None:
            label += ", under a daily budget (comparison)"
        if task_s != latency:
            label += f", L={task_s:g} s (comparison)"
        report(
            "1",
            f"ideal/actual {label}",
            ideal / r["wall"],
            "",
            target,
            note=f"wall {r['wall']:.1f} s vs ideal {ideal:.1f} s; {r['stored']}/{n} stored, "
            f"{r['checks_passed']}/{2 * n} checks passed{'' if good else ' (INCOMPLETE)'}; "
            f"{r['status'] / n:.2f} status req/clip; first submit after {r['first_submit_s']:.1f} s, "
            f"provider slots busy {100 * r['slot_use']:.0f} % until the last task finished, then "
            f"{r['tail_s']:.1f} s to store/check the last clips and end the run; {loadavg()}",
        )
        if storage_kind.startswith("s3"):
            top = ", ".join(f"{k} {v / n:.1f}" for k, v in list(r["s3_by_kind"].items())[:8])
            at = f"N={n}, L={task_s:g} s" + (", daily budget" if budget is not None else "")
            at += ", no added latency" if storage_kind == "s3-loopback" else ""
            report("1", f"S3 requests per clip, {at}", r["s3_requests"] / n, "", note=f"most: {top}")
            # Everything here shares the machine's cores: is the run waiting on round trips, or on CPU?
            used = r["cpu"] + r["sim_cpu"] + r["s3_server_cpu"]
            report(
                "1",
                f"share of the machine's CPU busy during the S3 run, {at}",
                100 * used / ((os.cpu_count() or 1) * r["wall"]),
                "%",
                note=f"{used:.1f} s of {os.cpu_count()} cores x {r['wall']:.1f} s: this process {r['cpu']:.1f} s, "
                f"moto's server and the latency proxy {r['s3_server_cpu']:.1f} s, the simulator {r['sim_cpu']:.1f} s",
            )
            cap_s3 = r["s3_capacity"]
            report(
                "1",
                f"S3 emulator: {cap_s3['clients']} clients x 3 PUTs one after the other, against 3 PUTs alone, {at}",
                cap_s3["wave_s"] / (3 * cap_s3["put_s"]),
                "x",
                note=f"{cap_s3['wave_s'] * 1000:.0f} ms against 3 x {cap_s3['put_s'] * 1000:.1f} ms: what one wave of "
                f"intents waits on; moto and the proxy used {cap_s3['server_cpu_per_put_s'] * 1000:.1f} ms of CPU "
                f"a PUT ({r['s3_server_cpu'] / max(1, r['s3_requests']) * 1000:.1f} ms a request during the run), "
                "one process each",
            )
        cpu_per_clip.append((label, r, diagnostic))
    print(
        f"[3] orchestrator CPU per clip (user+sys of this process during the run, plus the PostgreSQL "
        f"server's where it is the instance, / N; simulator in its own process, excluded); {loadavg()}",
        flush=True,
    )
    for label, r, diagnostic in cpu_per_clip:
        n, threads = r["n"], r["threads"]
        ours = r["cpu"] - threads.get("sampler", 0.0)  # the per-thread sampler is the benchmark's, not ours
        server = r["server_cpu"] or 0.0
        roles = ("dagster", "production", "probes", "workers", "other")
        per = {role: threads.get(role, 0.0) / n * 1000 for role in roles}
        parts = (
            f"Dagster's step thread (run and event storage) {per['dagster']:.1f}, clips production thread "
            f"(provider I/O) {per['production']:.1f}, probe thread (every frame decoded, content sampled, source "
            f"thumbnails) {per['probes']:.1f}, worker threads (planning, task-record and storage writes) "
            f"{per['workers']:.1f}, other threads (on S3: fsspec's I/O loop) "
            f"{per['other']:.1f}"
            + (f", PostgreSQL server {server / n * 1000:.1f}" if r["server_cpu"] is not None else "")
        )
        total = (ours + server) / n * 1000
        report(
            "3",
            f"CPU per clip {label}",
            total,
            "ms",
            note=f"ms per clip: {parts}; {ours + server:.1f} s CPU for {n} clips in {r['wall']:.1f} s wall; "
            f"simulator used {r['sim_cpu']:.1f} s",
        )
        # The target: at most 30 ms beyond the decode plays_to_end is defined by.
        report(
            "3",
            f"CPU per clip beyond the plays_to_end decode {label}",
            total - r["decode_ms"],
            "ms",
            None if diagnostic else "<= 30",
            note=f"{total:.1f} ms per clip less {r['decode_ms']:.1f} ms, the decode of one of the run's clips "
            "(every frame, one thread, no sampling), measured alone after the run",
        )
        report(
            "3",
            f"our code's CPU per clip {label} (production + probes + workers)",
            per["production"] + per["probes"] + per["workers"],
            "ms",
            note="the part of figure 3 that is this project's own code (the rest is Dagster and its database)",
        )
    k = 5
    pp = per_partition_runs(k, latency, cap)
    ideal_k = k * latency / cap
    report(
        "1",
        f"one run per partition, in-process sequential, K={k}",
        ideal_k / pp["wall"],
        "",
        note=f"{pp['ok']}/{k} runs ok in {pp['wall']:.1f} s ({pp['wall'] / k:.2f} s/run, "
        f"{pp['cpu'] / k * 1000:.0f} ms CPU/run) vs ideal {ideal_k:.1f} s; measured",
    )
    cores = os.cpu_count() or 1
    for n in sizes:
        ideal = n * latency / cap
        est = max(ideal, n * pp["sub_cpu"] / cores, n * (pp["sub_wall"] + latency) / cap)
        report(
            "1",
            f"one run per partition (subprocess runs) N={n}",
            ideal / est,
            "",
            note=f"EXTRAPOLATED from one measured `dagster asset materialize` run: {pp['sub_wall']:.1f} s wall, "
            f"{pp['sub_cpu']:.1f} s CPU{'' if pp['sub_ok'] else ' (FAILED: ' + pp['sub_err'] + ')'}; "
            f"N runs x CPU / {cores} cores = {n * pp['sub_cpu'] / cores:.0f} s vs ideal {ideal:.0f} s",
        )
