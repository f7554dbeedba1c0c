"""The simulator's state: config, tasks, request counters, fault bookkeeping, seeded RNG.

A task's timing is fixed when it is created (start = max(now + queue_delay, the earliest time a
concurrency slot is free); done = start + latency) and its state is read off the clock. Its MP4
is rendered in a thread pool from creation on; a task whose render is not finished at ``done``
keeps reporting "running". Thread-safe: the server's event loop and test threads share it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import pathlib
import random
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from seedance_pipeline.simulator.config import (
    CONTENT_KINDS,
    DOWNLOAD_KINDS,
    OUTCOME_KINDS,
    PROVIDERS,
    FaultRule,
    ProviderSimConfig,
    SimConfig,
)
from seedance_pipeline.simulator.task import Task, outcome_from_prompt

ENDPOINTS = ("submit", "status", "download", "cancel", "list", "other")

RenderFn = Callable[..., bytes]


def submit_key(body: Any) -> str:
    """sha256 of the canonical JSON of a submit body (images already replaced by their sha256)."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class _Shot:
    """What one render is made from (``image``/``last_image``: images.LoadedImage)."""

    image: Any
    last_image: Any
    width: int
    height: int
    duration_s: int
    audio: bool
    seed: int
    content: str | None

    def key(self) -> tuple:
        last = None if self.last_image is None else self.last_image.sha256
        return (
            self.image.sha256,
            last,
            self.width,
            self.height,
            self.duration_s,
            bool(self.audio),
            self.seed,
            self.content,
        )


@dataclass
class _FaultState:
    seen: int = 0
    applied: int = 0
    outages: int = 0
    down_until: float | None = None  # monotonic end of the current outage (kind "down")


class Simulator:
    def __init__(self, config: SimConfig | None = None, render_fn: RenderFn | None = None, render_workers: int = 2):
        self._lock = threading.RLock()
        self._render_fn = render_fn
        self._assets: dict[str, tuple[bytes, str]] = {}
        self._executor = ThreadPoolExecutor(max_workers=render_workers, thread_name_prefix="sim-render")
        self._config = config or SimConfig()
        self._wall_offset = time.time() - time.monotonic()
        self._in_flight = 0  # HTTP requests being handled (a reset does not end them)
        self._reset_locked()

    # --- configuration ---
    @property
    def config(self) -> SimConfig:
        return self._config

    def configure(self, config: SimConfig) -> None:
        """Replace the config; fault bookkeeping and the RNG restart, tasks and counters stay."""
        with self._lock:
            self._config = config
            self._faults = [_FaultState() for _ in config.faults]
            self._seed_rngs()

    def provider_config(self, provider: str) -> ProviderSimConfig:
        return self._config.provider(provider)

    def reset(self) -> None:
        """Forget tasks, counters, submits and fault bookkeeping; keep the config."""
        with self._lock:
            self._reset_locked()

    def _reset_locked(self) -> None:
        self._tasks: dict[str, Task] = {}
        self._counts = {p: dict.fromkeys(ENDPOINTS, 0) for p in PROVIDERS}
        self._submits: list[dict[str, Any]] = []
        self._renders: dict[tuple, Future] = {}
        self._rate: dict[str, list[float]] = {p: [] for p in PROVIDERS}  # accepted submits in the window
        self._rate_pending: dict[str, list[float]] = {p: [] for p in PROVIDERS}  # reserved, not yet answered
        self._admitted: dict[str, list[float]] = {p: [] for p in PROVIDERS}  # arrival of every counted submit
        self._rate_limited: dict[str, int] = dict.fromkeys(PROVIDERS, 0)  # submits answered 429 by the limit
        self._faults = [_FaultState() for _ in self._config.faults]
        self._seed_rngs()

    def _seed_rngs(self) -> None:
        seed = self._config.seed
        self._rng = random.Random(f"{seed}:tasks")
        self._fault_rng = random.Random(f"{seed}:faults")

    # --- a tiny file host (image URLs for tests and local runs); kept across reset() ---
    def put_asset(self, name: str, data: bytes, content_type: str | None = None) -> str:
        """Serve ``data`` at ``/_sim/assets/<name>``; returns that path."""
        if not content_type:
            import mimetypes

            content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
        with self._lock:
            self._assets[name] = (bytes(data), content_type)
        return f"/_sim/assets/{name}"

    def get_asset(self, name: str) -> tuple[bytes, str] | None:
        with self._lock:
            return self._assets.get(name)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    # --- auth ---
    def check_api_key(self, authorization: str | None) -> bool:
        if not authorization or not authorization.startswith("Bearer "):
            return False
        token = authorization[len("Bearer ") :].strip()
        if not token:
            return False
        keys = self._config.api_keys
        return keys is None or token in keys

    # --- counters and faults ---
    def request_started(self) -> None:
        with self._lock:
            self._in_flight += 1

    def request_ended(self) -> None:
        with self._lock:
            self._in_flight -= 1

    def in_flight(self) -> int:
        """HTTP requests being handled now, also those whose client has gone (a provider finishes what it read)."""
        with self._lock:
            return self._in_flight

    def count(self, provider: str, endpoint: str) -> None:
        with self._lock:
            self._counts[provider][endpoint if endpoint in ENDPOINTS else "other"] += 1

    def reserve_submit(self, provider: str) -> float | None:
        """A place for one submit under the provider's rate limit: its timestamp, or None (answer 429)."""
        cfg = self._config.provider(provider)
        if cfg.submits_per_window is None and cfg.max_running is None:
            return 0.0
        with self._lock:
            now = time.monotonic()
            recent = [t for t in self._rate[provider] if t > now - cfg.rate_window_s]
            running = sum(1 for t in self._tasks.values() if t.provider == provider and not t.is_terminal(now))
            full = cfg.submits_per_window is not None and len(recent) >= cfg.submits_per_window
            busy = cfg.max_running is not None and running + len(self._rate_pending[provider]) >= cfg.max_running
            self._rate[provider] = recent
            if full or busy:
                self._rate_limited[provider] += 1
                return None
            self._rate_pending[provider].append(now)
            return now

    def settle_submit(self, provider: str, reserved: float, accepted: bool) -> None:
        """The reserved submit answered: counted in the window if it created a task, else given back."""
        if not reserved:
            return
        with self._lock:
            self._rate_pending[provider].remove(reserved)
            if accepted:
                self._rate[provider].append(reserved)
                self._admitted[provider].append(reserved)

    def admitted_submits(self, provider: str) -> list[float]:
        """When each submit that counted against the provider's rate limit arrived (monotonic seconds), in order.

        The limit counts a submit at its arrival, as a provider does; ``submits()``'s ``at`` is when the task was
        recorded, after the body was read, which under load can put three arrivals of one window into two.
        """
        with self._lock:
            return sorted(self._admitted[provider])

    def match_fault(self, provider: str, endpoint: str) -> FaultRule | None:
        """The first rule that applies to this request (its bookkeeping advanced), else None."""
        with self._lock:
            for rule, st in zip(self._config.faults, self._faults, strict=True):
                if rule.provider not in ("*", provider) or rule.endpoint not in ("*", endpoint):
                    continue
                if rule.kind in DOWNLOAD_KINDS and endpoint != "download":
                    continue
                if rule.kind in OUTCOME_KINDS and endpoint != "submit":
                    continue
                st.seen += 1
                if rule.kind == "down" and st.down_until is not None:
                    if time.monotonic() < st.down_until:
                        st.applied += 1
                        return rule
                    st.down_until = None  # the outage is over; another may start below
                if st.seen <= rule.skip:
                    continue
                started = st.outages if rule.kind == "down" else st.applied
                if rule.times is not None and started >= rule.times:
                    continue
                if rule.probability is not None and self._fault_rng.random() >= rule.probability:
                    continue
                if rule.kind == "down":
                    st.outages += 1
                    st.down_until = time.monotonic() + rule.duration_s
                st.applied += 1
                return rule
        return None

    def record_submit(self, provider: str, body: Any, accepted: bool, task_id: str | None = None) -> str:
        key = submit_key(body)
        with self._lock:
            self._submits.append(
                {
                    "provider": provider,
                    "key": key,
                    "body": body,
                    "accepted": accepted,
                    "task_id": task_id,
                    "at": time.monotonic(),
                }
            )
        return key

    def submits(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(s) for s in self._submits]

    def submits_by_key(self, accepted_only: bool = True, provider: str | None = None) -> dict[str, int]:
        """{sha256 of the canonical submit body: how many such submits created a task}.

        The body is the JSON the client sent with ``image``/``last_image`` replaced by
        ``"sha256:<hex of the image bytes>"`` (RunPod: inside ``input``; unknown top-level keys,
        which RunPod discards, left out). JieKou and Novita take identical bodies, so pass
        ``provider`` to count one provider only. With ``accepted_only=False``, submits rejected
        after their JSON body was read (validation or image 400s) count too, keyed on the body
        as sent. Requests a fault stopped before processing (drop_before, http_429,
        http_status) and 401s never count.
        """
        out: dict[str, int] = {}
        with self._lock:
            for s in self._submits:
                if (s["accepted"] or not accepted_only) and provider in (None, s["provider"]):
                    out[s["key"]] = out.get(s["key"], 0) + 1
        return out

    def stats(self) -> dict[str, Any]:
        with self._lock:
            tasks_by_provider = dict.fromkeys(PROVIDERS, 0)
            for t in self._tasks.values():
                tasks_by_provider[t.provider] += 1
            return {
                "requests": {p: dict(c) for p, c in self._counts.items()},
                "rate_limited": dict(self._rate_limited),
                "submits_by_key": self.submits_by_key(),
                "submits_by_provider": {p: self.submits_by_key(provider=p) for p in PROVIDERS},
                "tasks": tasks_by_provider,
                "faults": [
                    {"index": i, "kind": r.kind, "seen": s.seen, "applied": s.applied, "outages": s.outages}
                    for i, (r, s) in enumerate(zip(self._config.faults, self._faults, strict=True))
                ],
            }

    # --- tasks ---
    def pick_seed(self, hi: int) -> int:
        with self._lock:
            return self._rng.randint(0, hi)

    def create_task(
        self,
        provider: str,
        *,
        prompt: str,
        image: Any,  # images.LoadedImage
        width: int,
        height: int,
        duration_s: int,
        audio: bool,
        seed: int,
        resolution: str,
        ratio: str,
        outcome: str | None = None,
        task_id: str | None = None,
        meta: dict[str, Any] | None = None,
        last_image: Any = None,  # images.LoadedImage
    ) -> Task:
        cfg = self.provider_config(provider)
        outcome = outcome or outcome_from_prompt(prompt) or "success"
        content = outcome if outcome in CONTENT_KINDS else None
        outcome = "success" if content else outcome
        with self._lock:
            now = time.monotonic()
            latency = self._rng.uniform(cfg.latency_min_s, cfg.latency_max_s)
            start = self._earliest_start(provider, now + cfg.queue_delay_s, latency, cfg.max_concurrency)
            task = Task(
                id=task_id or str(uuid.uuid4()),
                provider=provider,
                prompt=prompt,
                width=width,
                height=height,
                duration_s=duration_s,
                audio=audio,
                seed=seed,
                resolution=resolution,
                ratio=ratio,
                image_sha256=image.sha256,
                outcome=outcome,
                created_wall=self._wall_offset + now,
                created_mono=now,
                start_mono=start,
                done_mono=start + latency,
                output_url_ttl_s=cfg.output_url_ttl_s,
                wall_offset=self._wall_offset,
                meta=dict(meta or {}),
                content=content,
            )
            self._tasks[task.id] = task
            if outcome == "success":
                task.render = self._start_render(
                    _Shot(image, last_image, width, height, duration_s, audio, seed, content)
                )
        if task.render is not None:

            def rendered(_future: Future, t: Task = task) -> None:
                t.render_done_mono = time.monotonic()

            task.render.add_done_callback(rendered)
        return task

    def _earliest_start(self, provider: str, t0: float, latency: float, cap: int | None) -> float:
        """Earliest t >= t0 such that fewer than ``cap`` tasks are running anywhere in [t, t+latency)."""
        if cap is None:
            return t0
        busy = [
            (t.start_mono, t.done_mono)
            for t in self._tasks.values()
            if t.provider == provider and t.cancelled_mono is None and t.done_mono > t0
        ]
        candidates = sorted({t0, *(d for _, d in busy if d > t0)})
        for t in candidates:
            points = [t, *(s for s, _ in busy if t < s < t + latency)]
            if all(sum(1 for s, d in busy if s <= p < d) < cap for p in points):
                return t
        return candidates[-1]  # unreachable: after the last done nothing is busy

    def _start_render(self, shot: _Shot) -> Future:
        key = shot.key()
        if self._config.render_shared:
            key = ("shared", shot.width, shot.height, shot.duration_s, bool(shot.audio), 0)
            shot = dataclasses.replace(shot, seed=0, last_image=None, content=None)
        fut = self._renders.get(key)
        if fut is None or (fut.done() and fut.exception() is not None):
            fut = self._executor.submit(self._render, shot)
            self._renders[key] = fut
        return fut

    def _render(self, shot: _Shot) -> bytes:
        fn = self._render_fn
        if fn is None:
            from seedance_pipeline.simulator.render import render_clip  # imported lazily: written separately

            fn = render_clip
        cache = self._config.render_cache_dir
        extra: dict[str, Any] = {}
        if shot.last_image is not None:
            extra["last_image"] = shot.last_image.data
        if shot.content is not None:
            extra["content"] = shot.content
        args = (shot.image.data, shot.width, shot.height, shot.duration_s, shot.audio, shot.seed)
        return fn(*args, pathlib.Path(cache) if cache else None, **extra)

    def provider_tasks(self, provider: str) -> list[Task]:
        """The provider's tasks it still keeps, newest first."""
        with self._lock:
            kept = [t for t in self._tasks.values() if t.provider == provider and not self._forgotten(t)]
        return sorted(kept, key=lambda t: -t.created_wall)

    def get_task(self, provider: str, task_id: str, *, forgotten: bool = False) -> Task | None:
        """A task the provider still keeps: once ``record_ttl_s`` has passed since it ended, it knows it no more
        (status 404, not listed), as every provider does after its retention (docs/providers.md §8.6).
        ``forgotten=True`` finds it anyway: its output URL lives by ``output_url_ttl_s``, not by the record."""
        with self._lock:
            t = self._tasks.get(task_id)
            if t is None or t.provider != provider or (self._forgotten(t) and not forgotten):
                return None
        return t

    def _forgotten(self, task: Task) -> bool:
        ttl = self.provider_config(task.provider).record_ttl_s
        finished = task.finished_mono() if ttl is not None else None
        return finished is not None and ttl is not None and time.monotonic() > finished + ttl

    def cancel_task(self, task: Task) -> bool:
        """Cancel a task that is still queued; False (no change) in any other state."""
        with self._lock:
            now = time.monotonic()
            if task.phase(now) != "queued":
                return False
            task.cancelled_mono = now
            return True

    def tasks(self) -> list[dict[str, Any]]:
        with self._lock:
            items = list(self._tasks.values())
        return [t.summary() for t in items]

    def task_objects(self) -> list[Task]:
        with self._lock:
            return list(self._tasks.values())
