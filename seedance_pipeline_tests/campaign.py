"""The fault campaign: many clips through the real Dagster path while providers and S3 misbehave.

    python -m seedance_pipeline_tests.campaign --clips 200 --seed 1          # make reliability
    python -m seedance_pipeline_tests.campaign --clips 36 --outage-s 4       # the CI size

What runs: storage (local folder, or S3 on moto's server behind a proxy that fails writes in bursts)
with images and prompt files for all six providers; a SimulatorServer on loopback with seeded random
faults of every kind (429 with and without Retry-After, 5xx, resets before and after the request was
processed, read timeouts, trickling bodies, moderation, failed and expired tasks, output URLs that
expire, truncated, corrupted and redirected downloads, a gateway echoing our key, one provider down
for ``outage_s``); then ``run_pipeline`` (what ``seedance-pipeline run`` does) and recovery the way a
user gets it: the pending-tasks sensor evaluated and its runs executed, and ``run`` again, until a
round changes nothing and leaves nothing a rerun would collect (at most ``max_rounds``); where an attempt of
unknown acceptance waits on a provider's task-list delay, that wait and rounds until stable again.

What it reports (and what ``test_campaign.py`` asserts on the small run): clips requested; stored
and passing both checks (every stored MP4 is probed again); failed, grouped by the reason the user
sees; accepted submits per clip fingerprint, with any second paid submit classified; attempts whose
acceptance is unknown (they need a human decision: tracked, not orphans); orphaned provider tasks
(accepted at the provider, neither collected nor tracked in a task record); half-written files
(``*.part-*`` files, clips without a sidecar or of another size than it records); the simulator's
key found in stored files.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import re
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg

from seedance_pipeline.cli.runner import run_pipeline
from seedance_pipeline.clip.checks import Expected, evaluate
from seedance_pipeline.clip.probe import VideoProbeError, probe_video
from seedance_pipeline.definitions import build_definitions
from seedance_pipeline.defs.sensors.pending_tasks import pending_tasks_sensor
from seedance_pipeline.ledger.store import TaskStore
from seedance_pipeline.providers import ADAPTER_CLASSES, PROVIDERS
from seedance_pipeline.providers.resource import SeedanceProviders
from seedance_pipeline.providers.routing import SIMULATOR_KEY
from seedance_pipeline.simulator.config import FaultRule, ProviderSimConfig, SimConfig
from seedance_pipeline.simulator.server import SimulatorServer
from seedance_pipeline.storage.resource import SeedanceStorage

TERMINAL_FAILURES = frozenset({"fail", "expire", "moderation", "cancelled"})  # simulator task outcomes


@dataclass
class CampaignConfig:
    clips: int = 36
    seed: int = 1
    storage: str = "local"  # local | s3
    outage_s: float = 60.0  # how long one provider (WaveSpeed) is down
    latency_s: float = 0.3  # simulated generation time
    read_timeout_s: float = 1.5
    max_rounds: int = 5  # recovery rounds after the first run
    s3_burst_probability: float = 0.03
    workdir: str | None = None
    render_cache_dir: str | None = None


@dataclass
class CampaignResult:
    config: CampaignConfig
    requested: int = 0
    stored_passing: int = 0
    stored_failing_checks: list[str] = field(default_factory=list)
    failed: dict[str, list[str]] = field(default_factory=dict)  # reason -> clips
    submits_per_fingerprint: Counter = field(default_factory=Counter)  # n accepted submits -> clips
    resubmits_after_failure: list[str] = field(default_factory=list)
    double_paid: list[str] = field(default_factory=list)
    acceptance_unknown: list[str] = field(default_factory=list)
    settled_found: list[str] = field(default_factory=list)  # unknown, then found in the provider's task list
    settled_absent: list[str] = field(default_factory=list)  # unknown, then proven never created
    tracked_open: list[str] = field(default_factory=list)
    orphaned: list[str] = field(default_factory=list)
    half_written: list[str] = field(default_factory=list)
    missing_from_open_index: list[str] = field(default_factory=list)
    key_leaks: list[str] = field(default_factory=list)
    rounds: list[str] = field(default_factory=list)
    last_failures: list[str] = field(default_factory=list)  # the last run's failure lines
    faults_applied: dict[str, int] = field(default_factory=dict)
    s3_counts: dict[str, int] = field(default_factory=dict)
    requests: dict[str, int] = field(default_factory=dict)
    wall_s: float = 0.0


# -- inputs --------------------------------------------------------------------------------------------


def prompt_plan(clips: int) -> tuple[int, list[tuple[str, str]]]:
    """(images, [(prompt key, provider)]): two prompts per provider when there are enough clips."""
    per = 2 if clips >= 100 else 1
    prompts = [(f"p{i}-{p}", p) for i in range(per) for p in PROVIDERS]
    if clips < 100 and clips % len(prompts):  # one more prompt where it makes the clips whole images x prompts
        prompts.append(("p1-novita", "novita"))
    return math.ceil(clips / len(prompts)), prompts


def write_inputs(storage: SeedanceStorage, clips: int) -> tuple[list[str], dict[str, str]]:
    import io

    from PIL import Image

    n_images, prompts = prompt_plan(clips)
    sizes = [(400, 304), (304, 400), (400, 400), (540, 304)]  # small, inside the open ranges of §2.5
    images = []
    for i in range(n_images):
        buf = io.BytesIO()
        Image.new("RGB", sizes[i % len(sizes)], ((37 * i) % 256, (91 * i + 40) % 256, (53 * i + 90) % 256)).save(
            buf, "PNG"
        )
        key = f"img{i:03d}"
        storage.write_bytes(storage.path("images", f"{key}.png"), buf.getvalue())
        images.append(key)
    texts = {}
    for key, provider in prompts:
        texts[key] = f"campaign shot {key}: a slow pan across the scene"
        storage.write_bytes(
            storage.path("prompts", f"{key}.yaml"),
            (
                f'text: "{texts[key]}"\nimages: ["*"]\nprovider: {provider}\nduration: 4\nresolution: 480p\n'
                "generate_audio: false\nseed: 7\n"
            ).encode(),
        )
    return images, texts


def fault_rules(cfg: CampaignConfig) -> list[FaultRule]:
    slow = cfg.read_timeout_s + 0.5
    return [
        # one provider down for a whole window, from its 4th request on (every endpoint answers 503)
        FaultRule(provider="wavespeed", kind="down", duration_s=cfg.outage_s, skip=3, times=1),
        FaultRule(endpoint="submit", kind="http_429", probability=0.10, retry_after="1"),
        FaultRule(endpoint="submit", kind="http_429", probability=0.06),
        FaultRule(endpoint="submit", kind="http_status", status=503, probability=0.04),  # not taken: retried
        FaultRule(endpoint="submit", kind="http_status", status=502, probability=0.01),  # acceptance unknown
        FaultRule(endpoint="submit", kind="drop_before", probability=0.01),  # reset: acceptance unknown
        FaultRule(endpoint="submit", kind="drop_after", probability=0.01),  # task created, no answer
        FaultRule(endpoint="submit", kind="delay", delay_s=2 * cfg.read_timeout_s + 1, probability=0.01),
        FaultRule(endpoint="submit", kind="moderation", probability=0.04),
        FaultRule(endpoint="submit", kind="expire", probability=0.03),
        FaultRule(endpoint="submit", kind="fail", probability=0.02),
        FaultRule(endpoint="status", kind="http_429", probability=0.05, retry_after="1"),
        FaultRule(endpoint="status", kind="http_status", status=500, probability=0.04),
        FaultRule(endpoint="status", kind="http_status", status=502, probability=0.03),
        FaultRule(endpoint="status", kind="drop_before", probability=0.03),
        FaultRule(endpoint="status", kind="drop_after", probability=0.03),
        FaultRule(endpoint="status", kind="delay", delay_s=slow, probability=0.03),  # read timeout
        FaultRule(endpoint="status", kind="trickle", delay_s=0.5, probability=0.04),
        FaultRule(endpoint="status", kind="echo_auth", probability=0.02),
        FaultRule(endpoint="download", kind="drop_after", probability=0.03),
        FaultRule(endpoint="download", kind="delay", delay_s=slow, probability=0.02),
        FaultRule(endpoint="download", kind="trickle", delay_s=0.5, probability=0.04),
        FaultRule(endpoint="download", kind="truncate", probability=0.05),
        FaultRule(endpoint="download", kind="corrupt", probability=0.04),
        FaultRule(endpoint="download", kind="expire_url", probability=0.04),
        FaultRule(endpoint="download", kind="redirect", probability=0.03),
        FaultRule(endpoint="download", kind="redirect", location="file:///etc/passwd", probability=0.02),
    ]


def sim_config(cfg: CampaignConfig) -> SimConfig:
    timing = ProviderSimConfig(latency_min_s=cfg.latency_s, latency_max_s=cfg.latency_s * 2)
    return SimConfig(
        seed=cfg.seed,
        providers=dict.fromkeys(PROVIDERS, timing),
        faults=fault_rules(cfg),
        render_cache_dir=cfg.render_cache_dir,
    )


def providers_for(cfg: CampaignConfig, sim_url: str) -> SeedanceProviders:
    return SeedanceProviders(
        simulator_url=sim_url,
        simulator_latency_s=cfg.latency_s,
        client_settings={
            "read_timeout_s": cfg.read_timeout_s,
            "submit_read_timeout_s": 2 * cfg.read_timeout_s,
            "backoff_base_s": 0.2,
            "backoff_max_s": 4.0,
            "retry_after_cap_s": 2.0,
            "min_poll_interval_s": 0.3,
        },
    )


# -- the runs ------------------------------------------------------------------------------------------


def _state(storage: SeedanceStorage) -> tuple:
    clips = tuple(sorted(p for p in storage.fs.find(storage.path("clips")) if p.endswith(".mp4")))
    open_ = tuple(sorted((r.attempt_id, r.state) for r in TaskStore(storage).open_records()))
    return clips, open_


def recover(cfg: CampaignConfig, instance, storage, providers, result: CampaignResult) -> None:
    """First ``run``, then rounds of (pending-tasks sensor + its runs, ``run`` again) until stable; then, where an
    attempt of unknown acceptance waits on a provider's task-list delay, that wait and rounds until stable again."""
    defs = build_definitions(storage, providers)
    launched: set[str] = set()
    t0 = time.monotonic()
    report = run_pipeline(instance, storage, providers)
    result.rounds.append(
        f"run 1: {len(report.clips)} clip(s) stored, {len(report.failures)} failure line(s) "
        f"({time.monotonic() - t0:.0f} s)"
    )

    def one_round(n: int) -> bool:
        """One round; True when it changed nothing and left nothing a rerun would collect."""
        nonlocal report
        before = _state(storage)
        t0 = time.monotonic()
        resources = {"storage": storage, "providers": providers}
        with dg.build_sensor_context(instance=instance, resources=resources, definitions=defs) as ctx:
            tick = pending_tasks_sensor(ctx)
        # The daemon launches a run key once: a request it already launched is not run again.
        requests = [r for r in tick.run_requests or [] if r.run_key not in launched]
        launched.update(r.run_key for r in requests)
        collected = 0
        for req in requests:
            job = defs.resolve_job_def(req.job_name or "clips_job")
            res = job.execute_in_process(
                instance=instance,
                tags=req.tags,
                run_config=req.run_config,
                partition_key=req.partition_key,
                raise_on_error=False,
            )
            collected += res.success
        report = run_pipeline(instance, storage, providers)
        # A storage error's message says "run again", and a user would; so would a user whose `tasks list`
        # still shows an attempt a rerun collects (accepted, or download_failed: paid, kept open for that).
        # Only a round that changed nothing and left neither ends the recovery (at most max_rounds).
        storage_errors = [line for line in report.failures if "storage error" in line]
        result.rounds.append(
            f"round {n + 1}: sensor requested {len(requests)} collect run(s), {collected} succeeded; "
            f"run {n + 2}: {len(report.clips)} clip(s) stored, {len(report.failures)} failure line(s) "
            f"({time.monotonic() - t0:.0f} s)"
            + (f"; first storage error: {storage_errors[0]}" if storage_errors else "")
        )
        after = _state(storage)
        collectable = any(state in ("accepted", "download_failed") for _, state in after[1])
        return not requests and after == before and not storage_errors and not collectable

    # Rounds until one is stable (at most max_rounds); then, while an attempt of unknown acceptance waits on a
    # task-list delay, that wait and rounds until stable again: the round after the wait settles the attempt and
    # resubmits it, and that submit meets the same S3 bursts as any other (at most two waits).
    n = 0
    for phase in range(3):
        if phase and not _await_task_lists(storage, result):
            break
        for _ in range(cfg.max_rounds):
            n += 1
            if one_round(n - 1):
                break
    result.last_failures = report.failures


def _await_task_lists(storage: SeedanceStorage, result: CampaignResult) -> bool:
    """Waits for ``task_list_wait_s`` and returns True (one more round settles them) when there is a wait."""
    wait = task_list_wait_s(storage)
    if not wait:
        return False
    result.rounds.append(f"waited {wait:.0f} s for the providers' task-list delay")
    time.sleep(wait)
    return True


def task_list_wait_s(storage: SeedanceStorage) -> float:
    """Wall time a user's sensor would let pass: an attempt of unknown acceptance at a provider that lists its
    tasks is provably absent only once the provider's listing delay has passed since it was recorded. The time
    until the youngest such attempt reaches it (and a second more), or 0 when none is waiting."""
    pending = [
        r.updated_at + visibility
        for r in TaskStore(storage).open_records()
        if r.state in ("intent", "unknown") and (visibility := ADAPTER_CLASSES[r.provider].list_visibility_s)
    ]
    if not pending or max(pending) <= time.time():
        return 0.0
    return max(pending) - time.time() + 1


# -- the figures ---------------------------------------------------------------------------------------


def _reason(text: str) -> str:
    """A failure line without the clip, ids and numbers: what groups equal reasons."""
    text = re.sub(r"^clips: \S+\|\S+: ", "", text)
    text = re.sub(r"'/\S*/(images/\S+)'", r"'\1'", text)
    text = re.sub(r"(task|attempt) [\w-]*\d[\w-]*", r"\1 …", text)
    text = re.sub(r"\d+(\.\d+)?", "N", text)
    return text[:160]


def measure(
    cfg,
    storage: SeedanceStorage,
    sim: SimulatorServer,
    images: list[str],
    texts: dict[str, str],
    result: CampaignResult,
) -> None:
    from seedance_pipeline.core.images import inspect_image

    pairs = [(i, p) for p in texts for i in images]
    result.requested = len(pairs)
    store = TaskStore(storage)
    days = sorted({p.rsplit("/", 2)[-2] for p in storage.fs.find(storage.path("tasks", "days"))})
    records = [r for d in days for r in store.day_records(d)]
    by_pair: dict[tuple[str, str], list] = defaultdict(list)
    for r in sorted(records, key=lambda r: r.created_at):
        by_pair[(r.image, r.prompt)].append(r)
    failures = {}
    for line in result.last_failures:
        m = re.match(r"^clips: (\S+)\|(\S+): ", line)
        if m:
            failures[(m.group(1), m.group(2))] = line

    for image, prompt in pairs:
        clip, sidecar = storage.clip_path(prompt, image), storage.sidecar_path(prompt, image)
        name = f"{image}|{prompt}"
        if storage.exists(clip):
            if not storage.exists(sidecar):
                result.half_written.append(f"{name}: clip without sidecar")
                continue
            meta = json.loads(storage.read_bytes(sidecar))
            if storage.fs.size(clip) != meta.get("size_bytes"):
                result.half_written.append(
                    f"{name}: clip is {storage.fs.size(clip)} bytes, its sidecar says {meta.get('size_bytes')}"
                )
                continue
            req = meta["request"]
            try:
                with storage.fs.open(clip, "rb") as fh:
                    probed = probe_video(fh)
                checks = evaluate(probed, Expected(req["width"], req["height"], req["duration"], req["generate_audio"]))
            except (VideoProbeError, OSError) as exc:
                checks = {"probe": (False, {"error": str(exc)})}
            if all(ok for ok, _ in checks.values()):
                result.stored_passing += 1
            else:
                result.stored_failing_checks.append(f"{name}: {[k for k, (ok, _) in checks.items() if not ok]}")
            continue
        attempts = by_pair.get((image, prompt), [])
        if (image, prompt) in failures:
            reason = _reason(failures[(image, prompt)])
        elif attempts:
            last = attempts[-1]
            reason = f"{last.state}: {_reason(last.error or '')}"
        else:
            reason = "no attempt recorded and no failure reported"
        result.failed.setdefault(reason, []).append(name)

    # Provider tasks (accepted submits) per clip, matched by prompt text and image bytes.
    sha_to_image = {}
    for key in images:
        path = storage.path("images", f"{key}.png")
        sha_to_image[inspect_image(path, storage.read_bytes(path)).sha256] = key
    text_to_prompt = {t: k for k, t in texts.items()}
    tasks_by_pair: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for t in sorted(sim.sim.tasks(), key=lambda t: t["created_at"]):
        tasks_by_pair[(sha_to_image.get(t["image_sha256"]), text_to_prompt.get(t["prompt"]))].append(t)
    known_task_ids = {r.task_id for r in records if r.task_id}
    for pair, tasks in tasks_by_pair.items():
        name = f"{pair[0]}|{pair[1]}"
        result.submits_per_fingerprint[len(tasks)] += 1
        if len(tasks) > 1:
            earlier = tasks[:-1]
            if all(t["outcome"] in TERMINAL_FAILURES for t in earlier):
                result.resubmits_after_failure.append(
                    f"{name}: {len(tasks)} tasks, earlier ended " + ", ".join(t["outcome"] for t in earlier)
                )
            else:
                result.double_paid.append(f"{name}: tasks {[(t['id'], t['outcome']) for t in tasks]}")
        unknown = [r for r in by_pair.get(pair, []) if r.state in ("intent", "unknown")]
        for t in tasks:
            if t["id"] not in known_task_ids and not unknown:
                result.orphaned.append(f"{name}: {t['provider']} task {t['id']} ({t['outcome']})")
    result.submits_per_fingerprint[0] = len(pairs) - len(tasks_by_pair)
    # Attempts that need attention, from the records themselves (the open/ index is a copy that a
    # failed S3 write can miss: those are counted separately).
    indexed = {r.attempt_id for r in store.open_records()}
    for r in records:
        if r.settled:
            line = f"{r.image}|{r.prompt} on {r.provider}: {r.settled}"
            (result.settled_found if r.state not in ("rejected",) else result.settled_absent).append(line)
        if r.state not in ("intent", "unknown", "accepted", "download_failed"):
            continue
        if r.state in ("accepted", "download_failed") and storage.exists(storage.sidecar_path(r.prompt, r.image)):
            continue  # superseded: the clip was collected by a later attempt
        line = f"{r.image}|{r.prompt} on {r.provider}: {r.state} ({_reason(r.error or '')})"
        if r.attempt_id not in indexed:
            result.missing_from_open_index.append(line)
        (result.acceptance_unknown if r.state in ("intent", "unknown") else result.tracked_open).append(line)

    for path in storage.fs.find(storage.root):
        if ".part-" in path:
            result.half_written.append(path)
        elif not path.endswith((".mp4", ".parquet", ".png")) and SIMULATOR_KEY.encode() in storage.read_bytes(path):
            result.key_leaks.append(path)
    stats = sim.sim.stats()
    result.faults_applied = dict(Counter({f"{f['kind']}": 0 for f in stats["faults"]}))
    for f in stats["faults"]:
        result.faults_applied[f["kind"]] = result.faults_applied.get(f["kind"], 0) + f["applied"]
    result.requests = {
        ep: sum(per[ep] for per in stats["requests"].values()) for ep in ("submit", "status", "download")
    }


def format_table(r: CampaignResult) -> str:
    c = r.config
    out = [
        f"fault campaign: {c.clips} clips, seed {c.seed}, storage {c.storage}, outage {c.outage_s:.0f} s, "
        f"wall {r.wall_s:.0f} s",
        "",
    ]
    rows = [
        ("clips requested", r.requested),
        ("clips stored and passing both checks", r.stored_passing),
        ("clips stored but failing a check", len(r.stored_failing_checks)),
        ("clips failed, with a reason", sum(len(v) for v in r.failed.values())),
        (
            "provider tasks per clip fingerprint",
            ", ".join(f"{k}: {v}" for k, v in sorted(r.submits_per_fingerprint.items())),
        ),
        ("  second task after the provider failed the first", len(r.resubmits_after_failure)),
        ("  second task otherwise (paid twice)", len(r.double_paid)),
        ("acceptance unknown (needs a decision; tracked)", len(r.acceptance_unknown)),
        (
            "  settled from a task list instead: found / never created",
            f"{len(r.settled_found)} / {len(r.settled_absent)}",
        ),
        ("accepted tasks still open (tracked, not collected)", len(r.tracked_open)),
        ("  of these, missing from tasks/open (not listed by `tasks list`)", len(r.missing_from_open_index)),
        ("orphaned tasks (neither collected nor tracked)", len(r.orphaned)),
        ("files left half-written in storage", len(r.half_written)),
        ("API key found in stored files", len(r.key_leaks)),
    ]
    width = max(len(k) for k, _ in rows)
    out += [f"{k:<{width}}  {v}" for k, v in rows]
    if r.failed:
        out += ["", "failed clips by reason:"]
        for reason, clips in sorted(r.failed.items(), key=lambda kv: -len(kv[1])):
            out.append(f"  {len(clips):>4}  {reason}")
    for title, items in (
        ("stored but failing a check", r.stored_failing_checks),
        ("paid twice", r.double_paid),
        ("acceptance unknown", r.acceptance_unknown),
        ("settled from a task list", r.settled_found + r.settled_absent),
        ("still open", r.tracked_open),
        ("missing from tasks/open", r.missing_from_open_index),
        ("orphaned", r.orphaned),
        ("half-written", r.half_written),
        ("key leaks", r.key_leaks),
    ):
        if items:
            out += ["", f"{title}:"] + [f"  {x}" for x in items[:20]]
    out += ["", "faults applied: " + ", ".join(f"{k} {v}" for k, v in sorted(r.faults_applied.items()))]
    if r.s3_counts:
        out.append("S3 writes: " + ", ".join(f"{k} {v}" for k, v in r.s3_counts.items()))
    out.append("provider requests: " + ", ".join(f"{k} {v}" for k, v in r.requests.items()))
    out += ["", *r.rounds]
    return "\n".join(out)


# -- putting it together --------------------------------------------------------------------------------


@contextlib.contextmanager
def _s3_storage(cfg: CampaignConfig):
    from seedance_pipeline_tests.s3faults import S3FaultProxy
    from seedance_pipeline_tests.s3server import dummy_aws_environ, moto_server

    with dummy_aws_environ(), moto_server() as url:
        import boto3

        bucket = f"campaign-{uuid.uuid4().hex[:10]}"
        boto3.client("s3", endpoint_url=url).create_bucket(Bucket=bucket)
        with S3FaultProxy(url, burst_probability=0.0, seed=cfg.seed) as proxy:
            yield SeedanceStorage(url=f"s3://{bucket}/campaign", endpoint_url=proxy.url), proxy


def run_campaign(cfg: CampaignConfig) -> CampaignResult:
    started = time.monotonic()
    result = CampaignResult(cfg)
    with contextlib.ExitStack() as stack:
        workdir = cfg.workdir or stack.enter_context(tempfile.TemporaryDirectory(prefix="seedance-campaign-"))
        if cfg.render_cache_dir is None:
            cfg.render_cache_dir = str(Path(workdir) / "render-cache")
        if cfg.storage == "s3":
            storage, proxy = stack.enter_context(_s3_storage(cfg))
        else:
            storage, proxy = SeedanceStorage(url=str(Path(workdir) / "storage")), None
        images, texts = write_inputs(storage, cfg.clips)
        if proxy is not None:  # inputs are written; from now on S3 writes fail in bursts
            proxy.burst_probability = cfg.s3_burst_probability
        sim = stack.enter_context(SimulatorServer(sim_config(cfg)))
        providers = providers_for(cfg, sim.base_url)
        home = Path(workdir) / "dagster_home"
        home.mkdir(parents=True, exist_ok=True)
        instance = stack.enter_context(dg.instance_for_test(temp_dir=str(home)))
        recover(cfg, instance, storage, providers, result)
        if proxy is not None:
            proxy.burst_probability = 0.0  # measure through a healthy S3
            result.s3_counts = dict(proxy.counts)
        measure(cfg, storage, sim, images, texts, result)
    result.wall_s = time.monotonic() - started
    return result


def violations(r: CampaignResult, min_stored_share: float = 0.0) -> list[str]:
    """The campaign's invariants, each one that does not hold as a line (empty: all hold)."""
    failed = sum(len(v) for v in r.failed.values())
    rules = [
        (
            r.stored_passing + len(r.stored_failing_checks) + failed == r.requested,
            "every requested clip is stored or failed with a reason",
        ),
        (not r.stored_failing_checks, "no stored clip fails a check"),
        ("no attempt recorded and no failure reported" not in r.failed, "every failed clip has a reason"),
        (not r.double_paid, "no clip fingerprint paid twice"),
        (not r.orphaned, "no orphaned provider task"),
        (not r.half_written, "nothing half-written"),
        (not r.key_leaks, "no API key in storage"),
        # Every clip that failed is a provider's own verdict or waits for a human decision on a tracked
        # attempt; nothing is left open that the sensor or a rerun could have collected.
        (not r.tracked_open, "no accepted task left uncollected"),
        (r.stored_passing >= min_stored_share * r.requested, f"at least {min_stored_share:.0%} of the clips stored"),
    ]
    return [rule for ok, rule in rules if not ok]


def quiet() -> None:
    """A campaign's own table is its output: warnings and the pipeline's and Dagster's logs below errors are not."""
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    for name in ("seedance_pipeline", "dagster"):
        logging.getLogger(name).setLevel(logging.ERROR)


def main(argv: list[str] | None = None) -> int:
    quiet()
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clips", type=int, default=200)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--storage", choices=("local", "s3"), default="s3")
    ap.add_argument("--outage-s", type=float, default=60.0)
    ap.add_argument("--s3-burst-probability", type=float, default=0.03)
    ap.add_argument("--workdir", default=None, help="keep storage and the Dagster instance here (default: a temp dir)")
    args = ap.parse_args(argv)
    cfg = CampaignConfig(
        clips=args.clips,
        seed=args.seed,
        storage=args.storage,
        outage_s=args.outage_s,
        s3_burst_probability=args.s3_burst_probability,
        workdir=args.workdir,
    )
    result = run_campaign(cfg)
    print(format_table(result))
    broken = violations(result)
    for rule in broken:
        print(f"INVARIANT BROKEN: {rule}")
    return 1 if broken else 0


if __name__ == "__main__":
    raise SystemExit(main())
