"""The lifecycle campaign: a simulated month of daily use, with the invariants checked after every day.

    python -m seedance_pipeline_tests.lifecycle --days 30 --seed 1       # make lifecycle
    python -m seedance_pipeline_tests.lifecycle --days 4 --images 3      # the size `make test` runs

What runs: local storage with a catalog of images and one prompt file per provider; a SimulatorServer on loopback
where one provider throttles as an entry tier does (a few submits per rolling window, two at once, 429 without
Retry-After) and one forgets a task a few seconds after it ended (its record retention shortened, as RunPod's
30 minutes or WaveSpeed's 7 days would be at full scale). Each day (a round: the wall clock is not moved, so every
record lands on today's UTC date) the catalog changes, drawn from a seeded RNG: images added, deleted, renamed,
replaced; prompts edited, reverted to an earlier text, deleted, restored. Some days a ``seedance-pipeline run``
process is killed (SIGKILL) once it has a task accepted at the forgetful provider, and the user comes back only
after the provider has forgotten it. Then what a user has running does its part: the pending-tasks sensor is
evaluated and the runs it requests executed, and ``run`` (``run_pipeline``) brings everything up to date. A last
``run`` after the month makes what the lost tasks left missing.

Invariants after every day (``check``):
* no refresh fails (no failure from the source assets' steps);
* no clip file is deleted, and every clip an attempt delivered is still in storage (its pair's file or a kept
  version);
* every task the provider accepted is stored, open, or accounted: lost (and charged), failed at the provider,
  abandoned, or an attempt whose acceptance is unknown; never untracked;
* no request fingerprint paid twice: a second task only after the first failed at the provider or was lost;
* the ledger, the cost report and Dagster agree to the cent: per task, the charge the ledger records equals the
  cost on the clip's materialization (or on the lost observation), and each day's report totals what the ledger
  does.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg

from seedance_pipeline.cli.runner import RunReport, run_pipeline
from seedance_pipeline.definitions import build_definitions
from seedance_pipeline.defs.sensors.pending_tasks import pending_tasks_sensor
from seedance_pipeline.event_logs.instance_config import ensure_instance_config
from seedance_pipeline.ledger import states
from seedance_pipeline.ledger.records import AttemptRecord
from seedance_pipeline.ledger.states import AttemptState
from seedance_pipeline.ledger.store import TaskStore
from seedance_pipeline.providers import PROVIDERS
from seedance_pipeline.providers.resource import SeedanceProviders
from seedance_pipeline.simulator.config import ProviderSimConfig, SimConfig
from seedance_pipeline.simulator.server import SimulatorServer
from seedance_pipeline.storage import layout
from seedance_pipeline.storage.resource import SeedanceStorage
from seedance_pipeline_tests.campaign import quiet, task_list_wait_s

TERMINAL_FAILURES = frozenset({"fail", "expire", "moderation", "cancelled"})  # simulator task outcomes
EVENTS = (
    "add_image",
    "delete_image",
    "rename_image",
    "replace_image",
    "edit_prompt",
    "revert_prompt",
    "delete_prompt",
    "restore_prompt",
)
SIZES = [(400, 304), (304, 400), (400, 400), (540, 304)]  # small, inside the open ranges


@dataclass
class LifecycleConfig:
    days: int = 30
    seed: int = 1
    images: int = 6
    providers: tuple[str, ...] = PROVIDERS  # one prompt each
    latency_s: float = 0.3
    kill_every: int = 7  # a run is killed on day 3, 10, 17, ...
    forgetful: str = "novita"
    record_ttl_s: float = 4.0
    throttled: str = "wavespeed"
    submits_per_window: int = 4
    rate_window_s: float = 2.0
    max_running: int = 2
    workdir: str | None = None


@dataclass
class LifecycleResult:
    config: LifecycleConfig
    days: list[str] = field(default_factory=list)  # one line per day
    violations: list[str] = field(default_factory=list)  # "day N: rule: detail"
    events: Counter = field(default_factory=Counter)
    kills: int = 0
    orphans_left_by_kills: int = 0
    adopted: int = 0  # acceptance unknown after a kill, the provider had the task: its id given with `tasks adopt`
    abandoned: int = 0  # acceptance unknown after a kill, the provider had no task: `tasks abandon`
    outcomes: Counter = field(default_factory=Counter)  # attempt states over the whole ledger at the end
    provider_tasks: int = 0
    rate_limited: int = 0
    clip_files: int = 0
    kept_versions: int = 0
    charged_usd: float = 0.0
    lost_usd: float = 0.0
    reused_saved_usd: float = 0.0
    missing_at_end: list[str] = field(default_factory=list)
    wall_s: float = 0.0


# -- the world ----------------------------------------------------------------------------------------------


def _png(size: tuple[int, int], color: tuple[int, int, int]) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "PNG")
    return buf.getvalue()


def _prompt_yaml(text: str, provider: str) -> str:
    return (
        f'text: "{text}"\nimages: ["*"]\nprovider: {provider}\nduration: 4\nresolution: 480p\n'
        "generate_audio: false\nseed: 7\n"
    )


class World:
    """Storage, simulator, instance, and the catalog as the user keeps it (with what was deleted, to restore)."""

    def __init__(self, cfg: LifecycleConfig, workdir: Path, sim: SimulatorServer):
        self.cfg, self.sim, self.rng = cfg, sim, random.Random(cfg.seed)
        self.storage = SeedanceStorage(url=str(workdir / "storage"))
        self.home = workdir / "dagster_home"
        ensure_instance_config(self.home)
        self.instance = dg.DagsterInstance.from_config(str(self.home))
        self.providers = SeedanceProviders(simulator_url=sim.base_url, simulator_latency_s=cfg.latency_s)
        self.defs = build_definitions(self.storage, self.providers)
        self.workdir = workdir
        self.images: dict[str, bytes] = {}
        self.gone_images: dict[str, bytes] = {}
        self.prompt_texts: dict[str, list[str]] = {}  # key -> texts it has had, the current last
        self.prompt_provider: dict[str, str] = {}
        self.gone_prompts: set[str] = set()
        self.next_image = 0
        self.seen_clips: set[str] = set()
        self.launched: set[str] = set()
        self.resolved = (0, 0)  # (adopted, abandoned) by the user after the last killed run
        for _ in range(cfg.images):
            self.add_image()
        for provider in cfg.providers:
            key = f"shot-{provider}"
            self.prompt_provider[key] = provider
            self.write_prompt(key, f"lifecycle {key}: a slow pan across the scene")

    # catalog -----------------------------------------------------------------------------------------------

    def _image_path(self, key: str) -> str:
        return self.storage.path("images", f"{key}.png")

    def _new_bytes(self) -> bytes:
        color = (self.rng.randrange(256), self.rng.randrange(256), self.rng.randrange(256))
        return _png(SIZES[self.rng.randrange(len(SIZES))], color)

    def add_image(self) -> str:
        key, self.next_image = f"img{self.next_image:03d}", self.next_image + 1
        self.images[key] = self._new_bytes()
        self.storage.write_bytes(self._image_path(key), self.images[key])
        return key

    def write_prompt(self, key: str, text: str) -> None:
        self.prompt_texts.setdefault(key, []).append(text)
        self.storage.write_bytes(
            self.storage.path("prompts", f"{key}.yaml"), _prompt_yaml(text, self.prompt_provider[key]).encode()
        )

    def change(self, kind: str) -> str | None:
        """Apply one catalog change; what it did, or None when it does not apply today."""
        rng, live = self.rng, sorted(self.images)
        live_prompts = sorted(k for k in self.prompt_texts if k not in self.gone_prompts)
        if kind == "add_image":
            return f"add {self.add_image()}"
        if kind == "delete_image" and len(live) > 2:
            key = rng.choice(live)
            self.gone_images[key] = self.images.pop(key)
            self.storage.fs.rm(self._image_path(key))
            return f"delete {key}"
        if kind == "rename_image" and live:
            old = rng.choice(live)
            new, self.next_image = f"img{self.next_image:03d}", self.next_image + 1
            self.images[new] = self.images.pop(old)
            self.storage.write_bytes(self._image_path(new), self.images[new])
            self.storage.fs.rm(self._image_path(old))
            return f"rename {old} -> {new}"
        if kind == "replace_image" and live:
            key = rng.choice(live)
            self.images[key] = self._new_bytes()
            self.storage.write_bytes(self._image_path(key), self.images[key])
            return f"replace {key}"
        if kind == "edit_prompt" and live_prompts:
            key = rng.choice(live_prompts)
            self.write_prompt(key, f"lifecycle {key}: a slow pan, take {len(self.prompt_texts[key]) + 1}")
            return f"edit {key}"
        if kind == "revert_prompt":
            edited = [k for k in live_prompts if len(set(self.prompt_texts[k])) > 1]
            if edited:
                key = rng.choice(edited)
                texts = self.prompt_texts[key]
                earlier = [t for t in texts if t != texts[-1]]
                self.write_prompt(key, earlier[-1])
                return f"revert {key}"
        if kind == "delete_prompt" and len(live_prompts) > 1:
            key = rng.choice(live_prompts)
            self.gone_prompts.add(key)
            self.storage.fs.rm(self.storage.path("prompts", f"{key}.yaml"))
            return f"delete prompt {key}"
        if kind == "restore_prompt" and self.gone_prompts:
            key = rng.choice(sorted(self.gone_prompts))
            self.gone_prompts.discard(key)
            self.write_prompt(key, self.prompt_texts[key][-1])
            return f"restore prompt {key}"
        return None

    # what the user runs ------------------------------------------------------------------------------------

    def sensor_round(self) -> int:
        """The pending-tasks sensor, evaluated, and the runs it requests (each run key once, as the daemon)."""
        resources = {"storage": self.storage, "providers": self.providers}
        with dg.build_sensor_context(instance=self.instance, resources=resources, definitions=self.defs) as ctx:
            tick = pending_tasks_sensor(ctx)
        requests = [r for r in tick.run_requests or [] if r.run_key not in self.launched]
        for req in requests:
            self.launched.add(str(req.run_key))
            self.defs.resolve_job_def(req.job_name or "clips_job").execute_in_process(
                instance=self.instance,
                tags=req.tags,
                run_config=req.run_config,
                partition_key=req.partition_key,
                raise_on_error=False,
            )
        return len(requests)

    def run(self) -> RunReport:
        return run_pipeline(self.instance, self.storage, self.providers)

    def killed_run(self) -> int:
        """A ``seedance-pipeline run`` process killed once a task is accepted at the forgetful provider, and the
        user's look at what it left (``resolve_unknowns``: its counts in ``self.resolved``); returns once the
        provider has forgotten the killed run's tasks there. The number of attempts the kill left open."""
        store = TaskStore(self.storage)
        before = {r.attempt_id for r in store.open_records()}
        env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY") and not k.startswith("SEEDANCE_")}
        env.update(
            DAGSTER_HOME=str(self.home),
            SEEDANCE_STORAGE_URL=self.storage.url,
            SEEDANCE_SIMULATOR_URL=self.sim.base_url,
        )
        cli = str(Path(sys.executable).with_name("seedance-pipeline"))
        with open(self.workdir / "killed-run.log", "ab") as log:
            proc = subprocess.Popen([cli, "run"], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 180
        try:
            while True:
                fresh = [r for r in store.open_records() if r.attempt_id not in before]
                if any(r.provider == self.cfg.forgetful and r.state is AttemptState.ACCEPTED for r in fresh):
                    break
                if proc.poll() is not None:
                    raise RuntimeError(f"the run to kill ended first (exit {proc.returncode})")
                if time.monotonic() > deadline:
                    raise RuntimeError("no task was accepted at the forgetful provider within 180 s")
                time.sleep(0.02)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        left = [r for r in store.open_records() if r.attempt_id not in before]
        # A provider finishes a request whose body it read though the client has gone: the dashboard shows the
        # task only then. Sent but not yet read counts too (``quiet``): under load a killed run's last submit was
        # still in the socket's buffers when the handled count said zero, and became a task after the user looked.
        deadline = time.monotonic() + 60
        while not self.sim.quiet():
            if time.monotonic() > deadline:
                raise RuntimeError("the simulator still handles requests of the killed run after 60 s")
            time.sleep(0.02)
        self.resolved = self.resolve_unknowns()
        # The user comes back after the provider forgot what it finished: wait for exactly that.
        forgetful = [
            r.task_id
            for r in store.open_records()
            if r.attempt_id not in before and r.provider == self.cfg.forgetful and r.task_id
        ]
        deadline = time.monotonic() + self.cfg.record_ttl_s + 60
        while any(self.sim.sim.get_task(self.cfg.forgetful, t) is not None for t in forgetful):
            if time.monotonic() > deadline:
                raise RuntimeError("the forgetful provider kept its tasks past the deadline")
            time.sleep(0.05)
        return len(left)

    def resolve_unknowns(self) -> tuple[int, int]:
        """What a user does after a crash, with ``seedance-pipeline tasks``: every orphaned attempt whose acceptance
        is unknown at a provider that does not list its tasks (WaveSpeed's are settled by the sensor and ``run``)
        is looked up on the provider's dashboard (the simulator's own record of the submits it accepted: same
        provider, same prompt text and image bytes, a task no attempt tracks): ``tasks adopt`` when it is there,
        ``tasks abandon`` when it is not. Returns (adopted, abandoned)."""
        from click.testing import CliRunner

        from seedance_pipeline.cli import main as cli
        from seedance_pipeline.providers import ADAPTER_CLASSES

        store = TaskStore(self.storage)
        records = all_records(store)
        tracked = {r.task_id for r in records if r.task_id}
        accepted = [s for s in self.sim.sim.submits() if s["accepted"] and s["task_id"] not in tracked]
        env = {"SEEDANCE_STORAGE_URL": self.storage.url, "SEEDANCE_SIMULATOR_URL": self.sim.base_url}
        adopted = abandoned = 0
        for r in store.open_records():
            if r.state not in states.NEEDS_DECISION or ADAPTER_CLASSES[r.provider].list_visibility_s is not None:
                continue
            needle = (json.dumps(r.request["prompt"]), f"sha256:{r.request['image_sha256']}")
            shown = [
                s for s in accepted if s["provider"] == r.provider and all(n in json.dumps(s["body"]) for n in needle)
            ]
            args = (
                ["tasks", "adopt", r.attempt_id, shown[0]["task_id"]] if shown else ["tasks", "abandon", r.attempt_id]
            )
            out = CliRunner().invoke(cli, args, env=env)
            if out.exit_code != 0:
                raise RuntimeError(f"seedance-pipeline {' '.join(args)}: exit {out.exit_code}: {out.output}")
            if shown:
                accepted.remove(shown[0])
                adopted += 1
            else:
                abandoned += 1
        return adopted, abandoned


def sim_config(cfg: LifecycleConfig) -> SimConfig:
    timing = {"latency_min_s": cfg.latency_s, "latency_max_s": cfg.latency_s * 2}
    providers = {p: ProviderSimConfig(**timing) for p in PROVIDERS}
    providers[cfg.forgetful] = ProviderSimConfig(**timing, record_ttl_s=cfg.record_ttl_s)
    providers[cfg.throttled] = ProviderSimConfig(
        **timing,
        submits_per_window=cfg.submits_per_window,
        rate_window_s=cfg.rate_window_s,
        max_running=cfg.max_running,
    )
    return SimConfig(seed=cfg.seed, providers=providers)


# -- the invariants -----------------------------------------------------------------------------------------


def all_records(store: TaskStore) -> list[AttemptRecord]:
    try:
        days = sorted({p.rsplit("/", 2)[-2] for p in store.storage.fs.find(store.storage.path(layout.TASKS_DAYS))})
    except FileNotFoundError:
        return []
    return [r for d in days for r in store.day_records(d)]


def charged(r: AttemptRecord) -> float:
    if r.state not in states.BILLED:
        return 0.0
    return r.reported_cost_usd if r.reported_cost_usd is not None else r.estimated_cost_usd


def _cents(x: float) -> int:
    return round(x * 100)


def _float(meta: dict, key: str) -> float | None:
    value = meta.get(key)
    value = getattr(value, "value", value)
    return float(value) if isinstance(value, (int, float)) else None


def _every(fetch, key: dg.AssetKey) -> list:
    """Every event record a paged ``fetch_*`` call returns for the asset."""
    out, cursor = [], None
    while True:
        page = fetch(key, limit=1000, cursor=cursor)
        out += page.records
        if not page.has_more:
            return out
        cursor = page.cursor


def dagster_charges(instance: dg.DagsterInstance) -> tuple[dict[str, list[float]], dict[str, float]]:
    """Per task id: the costs on 'generated' clip materializations, and the charges on 'lost' observations."""
    clips = dg.AssetKey("clips")
    generated: dict[str, list[float]] = {}
    for rec in _every(instance.fetch_materializations, clips):
        meta = rec.asset_materialization.metadata if rec.asset_materialization else {}
        if getattr(meta.get("outcome"), "value", None) != "generated":
            continue
        cost = _float(meta, "reported_cost_usd")
        cost = cost if cost is not None else _float(meta, "estimated_cost_usd")
        generated.setdefault(str(meta["task_id"].value), []).append(cost or 0.0)
    lost = {}
    for rec in _every(instance.fetch_observations, clips):
        obs = rec.event_log_entry.asset_observation
        meta = obs.metadata if obs else {}
        if getattr(meta.get("outcome"), "value", None) == "lost":
            lost[str(meta["task_id"].value)] = _float(meta, "charged_usd") or 0.0
    return generated, lost


def report_total(world: World, day: str) -> tuple[float | None, float | None]:
    """(the Parquet report's charged total, the charged total on the report's latest materialization)."""
    import pandas as pd

    path = world.storage.path(layout.report(day, "parquet"))
    if not world.storage.exists(path):
        return None, None
    with world.storage.fs.open(path, "rb") as fh:
        parquet = float(pd.read_parquet(fh)["charged_usd"].sum())
    records = world.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey("cost_report"), asset_partitions=[day]), limit=1
    ).records
    meta = records[0].asset_materialization.metadata if records and records[0].asset_materialization else {}
    return parquet, _float(meta, "charged_usd")


def check(world: World, report: RunReport) -> list[str]:
    out = []
    storage, store = world.storage, TaskStore(world.storage)
    refresh = [f for f in report.failures if f.startswith(("source_images:", "prompts:"))]
    out += [f"a refresh failed: {f}" for f in refresh]

    clips_now = {p for p in storage.fs.find(storage.path(layout.CLIPS)) if p.endswith(".mp4")}
    out += [f"clip file deleted: {p}" for p in sorted(world.seen_clips - clips_now)]
    world.seen_clips |= clips_now

    records = all_records(store)
    for r in records:
        if r.state is not AttemptState.SUCCEEDED or not r.task_id:
            continue
        kept = storage.path(layout.kept_version(r.prompt, r.image, r.fingerprint))
        here = storage.path(layout.clip(r.prompt, r.image))
        sidecar = layout.sidecar_of(here)
        current = (
            storage.exists(sidecar) and json.loads(storage.read_bytes(sidecar)).get("fingerprint") == r.fingerprint
        )
        if not (current and storage.exists(here)) and not storage.exists(kept):
            out.append(f"delivered clip missing: {r.image}|{r.prompt} {r.fingerprint[:12]} (attempt {r.attempt_id})")

    by_task = {r.task_id: r for r in records if r.task_id}
    undecided = {r.provider for r in records if r.state in states.NEEDS_DECISION}
    by_fingerprint: dict[str, list[tuple[dict, AttemptRecord]]] = {}
    for t in sorted(world.sim.sim.tasks(), key=lambda t: t["created_at"]):
        r = by_task.get(t["id"])
        if r is None:
            if t["provider"] not in undecided:
                out.append(f"untracked provider task: {t['provider']} {t['id']} ({t['outcome']})")
            continue
        if r.state in (AttemptState.INTENT, AttemptState.UNKNOWN, AttemptState.REJECTED, AttemptState.BLOCKED):
            out.append(f"task {t['id']} accepted at {t['provider']} but its attempt says {r.state}")
        by_fingerprint.setdefault(r.fingerprint, []).append((t, r))
    for fingerprint, tasks in by_fingerprint.items():
        for t, r in tasks[:-1]:
            if t["outcome"] not in TERMINAL_FAILURES and r.state is not AttemptState.LOST:
                ids = [x["id"] for x, _ in tasks]
                out.append(f"fingerprint {fingerprint[:12]} paid twice: tasks {ids} ({r.image}|{r.prompt})")
                break

    generated, lost = dagster_charges(world.instance)
    for task_id, costs in generated.items():
        if len(costs) > 1:
            out.append(f"task {task_id} materialized as generated {len(costs)} times")
    for r in records:
        if not r.task_id or r.state not in (AttemptState.SUCCEEDED, AttemptState.LOST):
            continue
        shown = lost.get(r.task_id) if r.state is AttemptState.LOST else (generated.get(r.task_id) or [None])[0]
        if shown is None or _cents(shown) != _cents(charged(r)):
            out.append(f"task {r.task_id} ({r.state}): ledger ${charged(r):.4f}, Dagster {shown}")
    for day in sorted({r.day for r in records}):
        ledger = sum(charged(r) for r in records if r.day == day)
        parquet, materialized = report_total(world, day)
        if parquet is None or materialized is None or not _cents(ledger) == _cents(parquet) == _cents(materialized):
            out.append(f"{day}: ledger ${ledger:.4f}, cost report {parquet}, its materialization {materialized}")
    return out


def measure(world: World, result: LifecycleResult) -> None:
    store = TaskStore(world.storage)
    records = all_records(store)
    result.outcomes = Counter(str(r.state) for r in records)
    result.charged_usd = sum(charged(r) for r in records)
    result.lost_usd = sum(charged(r) for r in records if r.state is AttemptState.LOST)
    result.reused_saved_usd = sum(r.estimated_cost_usd for r in records if r.state is AttemptState.REUSED)
    stats = world.sim.sim.stats()
    result.provider_tasks = sum(stats["tasks"].values())
    result.rate_limited = sum(stats["rate_limited"].values())
    clips = [p for p in world.storage.fs.find(world.storage.path(layout.CLIPS)) if p.endswith(".mp4")]
    result.kept_versions = sum(".versions/" in p for p in clips)
    result.clip_files = len(clips) - result.kept_versions
    for image in sorted(world.images):
        for prompt in sorted(k for k in world.prompt_texts if k not in world.gone_prompts):
            if not world.storage.exists(world.storage.path(layout.clip(prompt, image))):
                result.missing_at_end.append(f"{image}|{prompt}")


# -- the month ----------------------------------------------------------------------------------------------


def run_lifecycle(cfg: LifecycleConfig) -> LifecycleResult:
    started = time.monotonic()
    result = LifecycleResult(cfg)
    with contextlib.ExitStack() as stack:
        workdir = Path(cfg.workdir or stack.enter_context(tempfile.TemporaryDirectory(prefix="seedance-lifecycle-")))
        sim = stack.enter_context(SimulatorServer(sim_config(cfg)))
        world = World(cfg, workdir, sim)
        stack.callback(world.instance.dispose)
        report = world.run()  # day 0: the catalog as first delivered
        result.days.append(_day_line(0, ["initial catalog"], report, 0, check(world, report), result))
        for day in range(1, cfg.days + 1):
            t0 = time.monotonic()
            kinds = world.rng.sample(EVENTS, k=world.rng.choice((1, 2)))
            done = []
            for kind in kinds:
                if did := world.change(kind):
                    done.append(did)
                    result.events[kind] += 1
            killed = 0
            if cfg.kill_every and day % cfg.kill_every == 3 % cfg.kill_every:
                # Something for the forgetful provider to do: its prompt edited (and so restored, if deleted).
                key = f"shot-{cfg.forgetful}"
                world.gone_prompts.discard(key)
                world.write_prompt(key, f"lifecycle {key}: a slow pan, take {len(world.prompt_texts[key]) + 1}")
                done.append(f"edit {key}")
                killed = world.killed_run()
                result.kills += 1
                result.orphans_left_by_kills += killed
                done.append(f"run killed ({killed} attempt(s) left open)")
                adopted, abandoned = world.resolved
                result.adopted += adopted
                result.abandoned += abandoned
                done.append(f"user: {adopted} task id(s) adopted from the dashboard, {abandoned} attempt(s) abandoned")
            collected = world.sensor_round()
            report = world.run()
            broken = check(world, report)
            result.days.append(_day_line(day, done, report, collected, broken, result, seconds=time.monotonic() - t0))
        # The morning after: what the lost tasks left missing is made, once WaveSpeed's list can settle the last
        # unknowns (the sensor would have had the night).
        time.sleep(task_list_wait_s(world.storage))
        world.sensor_round()
        report = world.run()
        result.days.append(_day_line(cfg.days + 1, ["catch-up run"], report, 0, check(world, report), result))
        measure(world, result)
    result.wall_s = time.monotonic() - started
    return result


def _day_line(
    day: int,
    done: list[str],
    report: RunReport,
    collected: int,
    broken: list[str],
    result: LifecycleResult,
    seconds: float | None = None,
) -> str:
    result.violations += [f"day {day}: {v}" for v in broken]
    outcomes = Counter(c.outcome for c in report.clips)
    took = f" ({seconds:.0f} s)" if seconds is not None else ""
    return (
        f"day {day:>2}: {'; '.join(done)}. sensor: {collected} collect run(s); run: "
        + (", ".join(f"{n} {o}" for o, n in sorted(outcomes.items())) or "nothing to do")
        + (f", {len(report.retired)} retired" if report.retired else "")
        + (f", {len(report.failures)} failure line(s)" if report.failures else "")
        + (f"; {len(broken)} INVARIANT(S) BROKEN" if broken else "")
        + took
    )


def format_table(r: LifecycleResult) -> str:
    c = r.config
    head = (
        f"lifecycle campaign: {c.days} days, seed {c.seed}, {c.images} images x {len(c.providers)} prompts at the "
        f"start; {c.throttled} throttled ({c.submits_per_window} submits per {c.rate_window_s:g} s, "
        f"{c.max_running} at once), {c.forgetful} forgets tasks {c.record_ttl_s:g} s after they end; "
        f"wall {r.wall_s:.0f} s"
    )
    rows = [
        ("catalog changes", ", ".join(f"{k} {n}" for k, n in sorted(r.events.items()))),
        ("runs killed / attempts they left open", f"{r.kills} / {r.orphans_left_by_kills}"),
        ("  unknown after a kill: adopted / abandoned", f"{r.adopted} / {r.abandoned}"),
        ("attempts by final state", ", ".join(f"{k} {n}" for k, n in sorted(r.outcomes.items()))),
        ("provider tasks created", r.provider_tasks),
        ("429s received from the throttled provider", r.rate_limited),
        ("clip files (current) / kept earlier versions", f"{r.clip_files} / {r.kept_versions}"),
        ("charged (ledger = cost reports = Dagster)", f"${r.charged_usd:.4f}"),
        ("  of it for lost tasks", f"${r.lost_usd:.4f}"),
        ("saved by reuse", f"${r.reused_saved_usd:.4f}"),
        ("pairs of the final catalog without a clip", len(r.missing_at_end)),
        ("invariant violations", len(r.violations)),
    ]
    width = max(len(k) for k, _ in rows)
    out = [head, ""] + [f"{k:<{width}}  {v}" for k, v in rows] + [""] + r.days
    if r.missing_at_end:
        out += ["", "missing at the end:"] + [f"  {m}" for m in r.missing_at_end[:20]]
    if r.violations:
        out += ["", "violations:"] + [f"  {v}" for v in r.violations[:40]]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    quiet()
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--images", type=int, default=6)
    ap.add_argument("--workdir", default=None, help="keep storage and the Dagster instance here (default: a temp dir)")
    args = ap.parse_args(argv)
    result = run_lifecycle(LifecycleConfig(days=args.days, seed=args.seed, images=args.images, workdir=args.workdir))
    print(format_table(result))
    return 1 if result.violations or result.missing_at_end else 0


if __name__ == "__main__":
    raise SystemExit(main())
