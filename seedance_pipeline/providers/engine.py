"""The one I/O engine every adapter shares: HTTP, timeouts, retries, Retry-After, caps, polling, downloads.

Rules (DESIGN.md principle 2, providers.md §8.4-8.6):
- The submit POST goes out on a fresh connection and is never repeated once it may have reached the
  provider. Only answers that say "not taken" (408, 425, 429, 503) or a connection that never opened
  are retried; a drop or timeout after sending is ``AcceptanceUnknown``.
- Status GETs and downloads retry on 408/425/429/5xx and transport errors, with exponential backoff
  and full jitter, honouring ``Retry-After`` in seconds or as an HTTP-date.
- At most ``max_in_flight`` tasks per provider client are between submit and a terminal state.
- Polling starts near the expected duration (provider ETA, else what this client has seen, else the
  configured prior) and then polls at a fixed fraction of the elapsed time, so detection delay stays a
  bounded share of the task's duration and requests per task stay few. Where the durations seen are
  tightly clustered, it polls at the cluster's percentiles instead (``PollSchedule``).
"""

from __future__ import annotations

import asyncio
import email.utils
import ipaddress
import logging
import random
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urljoin, urlsplit

import fsspec
import httpx
from pydantic import BaseModel, ConfigDict

from seedance_pipeline.core.errors import (
    AcceptanceUnknown,
    DownloadFailed,
    PollTimeout,
    ProviderError,
    ProviderUnavailable,
    SubmitRejected,
)
from seedance_pipeline.core.mp4 import looks_like_mp4
from seedance_pipeline.providers.base import ProviderAdapter, WireReply, WireRequest, relative_path
from seedance_pipeline.providers.states import TaskSnapshot, TaskState
from seedance_pipeline.storage_io import atomic_writer_async

log = logging.getLogger(__name__)

RETRYABLE_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
NOT_TAKEN_STATUSES = frozenset({408, 425, 429, 503})  # on submit: the provider says it did not take it
EXPIRED_URL_STATUSES = frozenset({401, 403, 404, 410})
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 5
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
# A URL's query (where presigned URLs carry X-Amz-Signature, Credential, Expires, ...) and fragment.
_URL_QUERY = re.compile(r"""((?:https?|s3|gs|file)://[^\s"'<>?#]*)[?#][^\s"'<>]*""", re.IGNORECASE)
# Credentials a provider or gateway may echo back from our request headers.
_BEARER = re.compile(r"(Bearer|Basic|Token)(\s+)[A-Za-z0-9._~+/=-]+", re.IGNORECASE)


def scrub(text: str, secrets: tuple[str, ...] = ()) -> str:
    """``text`` fit for logs and errors: no secret, no bearer token, no URL query (signatures)."""
    if not text:
        return text
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    text = _BEARER.sub(r"\1\2***", text)
    return _URL_QUERY.sub(r"\1?…", text)


class ClientSettings(BaseModel):
    """Every knob of the engine, with explicit defaults. Times are seconds."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    connect_timeout_s: float = 10.0
    read_timeout_s: float = 60.0
    write_timeout_s: float = 60.0
    submit_read_timeout_s: float = 120.0  # RunPod /runsync and WaveSpeed sync mode hold the POST open
    max_retries: int = 6
    backoff_base_s: float = 0.5
    backoff_max_s: float = 30.0
    retry_after_cap_s: float = 300.0
    max_in_flight: int = 4
    expected_latency_s: float = 60.0  # prior for the shortest task; providers say "~60-120 s"
    # Poll every 14 % of the elapsed time once past the expected duration: a task is noticed within 14 % of
    # its duration, leaving a point for the poll's own latency under the 15 % that issue 6 allows.
    poll_growth: float = 0.14
    min_poll_interval_s: float = 1.0
    max_poll_interval_s: float = 30.0
    max_eta_wait_s: float = 600.0
    task_deadline_s: float = 3 * 3600.0  # client-side bound, also for unknown status words
    download_max_bytes: int = 2 * 1024**3
    download_chunk_bytes: int = 1024 * 1024
    allow_private_hosts: bool | None = None  # None: only when the provider base URL itself is loopback


@dataclass(frozen=True)
class DownloadResult:
    path: str
    size_bytes: int
    attempts: int


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP-date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class PollSchedule:
    """When to ask again. Pure arithmetic; the engine sleeps.

    Each finished task teaches a bracket: its duration lies between the last poll that found it running and
    the poll that found it done. Two regimes, chosen from the last 50 brackets:
    - broad (or fewer than ``TIGHT_MIN_SAMPLES`` learned): first poll at 90 % of the shortest duration seen
      (the configured prior before any), then every ``poll_growth`` of the elapsed time;
    - tight, when the middle 80 % of the learned durations fits within one growth step of their median
      (a batch of one shape at one provider): polls at their 10th, 50th and 90th percentiles, then growth.
      A fixed-duration workload is then noticed within half the cluster's width, in about two polls,
      where the broad rule lands one poll early and the next a whole growth step late.
    The percentiles are those of the brackets taken as spans, not of their midpoints: a batch submitted
    together is asked at the same instants, and its shared midpoint sits below every real duration.
    """

    TIGHT_MIN_SAMPLES = 5
    _POINTS = 5  # points spread over each bracket for the percentiles

    def __init__(self, settings: ClientSettings):
        self.settings = settings
        self._seen: deque[tuple[float, float]] = deque(maxlen=50)  # (from, to) brackets of durations
        self._tight: tuple[float, ...] | None = None

    def observe(self, done_by_s: float, running_at_s: float | None = None) -> None:
        """A task was seen finished ``done_by_s`` after it started, and still running at ``running_at_s``.

        Its duration lies between the two: learning ``done_by_s`` alone (when we noticed) would add our own
        detection delay to every later first poll, which then lands just before the task ends and the next
        one a whole interval after. Seen finished at the first poll, it may have taken much less: it is
        learned as 80-100 % of ``done_by_s``, so a provider that got faster moves the first poll earlier
        instead of holding it where tasks used to end.
        """
        self._seen.append((0.8 * done_by_s if running_at_s is None else running_at_s, done_by_s))
        self._tight = self._cluster()

    def _cluster(self) -> tuple[float, ...] | None:
        if len(self._seen) < self.TIGHT_MIN_SAMPLES:
            return None
        n = self._POINTS
        points = sorted(lo + (hi - lo) * (i + 0.5) / n for lo, hi in self._seen for i in range(n))
        q = tuple(points[round(p * (len(points) - 1))] for p in (0.1, 0.5, 0.9))
        return q if q[-1] - q[0] <= self.settings.poll_growth * q[1] else None

    @property
    def learned(self) -> tuple[tuple[float, float], ...]:
        """The (from, to) brackets of the durations learned, oldest first."""
        return tuple(self._seen)

    @property
    def expected_s(self) -> float:
        """The shortest learned duration (each bracket's midpoint), else the configured prior."""
        return min((lo + hi) / 2 for lo, hi in self._seen) if self._seen else self.settings.expected_latency_s

    @property
    def floor_s(self) -> float:
        """Shortest wait: ``min_poll_interval_s``, lowered for tasks shorter than it can serve well.

        For minute-long tasks this is ``min_poll_interval_s``; for 2 s tasks a 1 s floor alone would add up
        to 50 % detection delay, so the floor is never more than ``poll_growth`` of the expected duration.
        Between the percentiles of a tight cluster (three polls at most) it is 2 % of the expected duration.
        """
        s = self.settings
        return min(s.min_poll_interval_s, (0.02 if self._tight else s.poll_growth) * self.expected_s)

    def next_delay(self, elapsed_s: float, eta_s: float | None) -> float:
        s = self.settings
        floor = self.floor_s
        if eta_s is not None and eta_s > 0:
            return min(max(eta_s, floor), s.max_eta_wait_s)
        marks = self._tight or (0.9 * self.expected_s,)
        for mark in marks:
            if elapsed_s < mark:
                return max(mark - elapsed_s, floor)
        return min(max(s.poll_growth * elapsed_s, floor), s.max_poll_interval_s)


class ProviderClient:
    """One provider's HTTP client. Create it inside the event loop that uses it; close it after."""

    def __init__(
        self,
        adapter: ProviderAdapter,
        api_key: str,
        *,
        base_url: str | None = None,
        settings: ClientSettings | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
        logger: logging.Logger | Any | None = None,
    ):
        if not api_key:
            raise ValueError("api_key is empty")
        self.adapter = adapter
        self.provider = adapter.name
        self.base_url = (base_url or adapter.default_base_url).rstrip("/")
        self.settings = settings or ClientSettings()
        self.schedule = PollSchedule(self.settings)
        self._secret = api_key
        self._sleep = sleep
        self._rng = rng or random.Random()
        self.log = logger or log
        s = self.settings
        timeout = httpx.Timeout(s.read_timeout_s, connect=s.connect_timeout_s, write=s.write_timeout_s)
        headers = {**adapter.auth_headers(api_key), "Accept": "application/json"}
        self._api = httpx.AsyncClient(base_url=self.base_url, headers=headers, timeout=timeout, transport=transport)
        # Submits go out on a fresh connection: a stale pooled connection could fail after the
        # request left, and we could not tell a provider-side drop from our own reuse.
        self._submit = httpx.AsyncClient(
            base_url=self.base_url,
            headers=headers,
            transport=transport,
            timeout=httpx.Timeout(s.submit_read_timeout_s, connect=s.connect_timeout_s, write=s.write_timeout_s),
            limits=httpx.Limits(max_keepalive_connections=0),
        )
        # Output URLs live on other hosts: this client never carries the API key.
        self._download = httpx.AsyncClient(timeout=timeout, transport=transport)
        self._slots = asyncio.Semaphore(s.max_in_flight)
        host = urlsplit(self.base_url).hostname or ""
        self._allow_private = s.allow_private_hosts if s.allow_private_hosts is not None else _is_private(host)
        self.requests_sent = {"submit": 0, "status": 0, "download": 0}

    async def __aenter__(self) -> ProviderClient:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        for client in (self._api, self._submit, self._download):
            await client.aclose()

    # -- helpers ---------------------------------------------------------------------------------

    def redact(self, text: str) -> str:
        """Every message this client produces passes here: see ``scrub``."""
        return scrub(text, (self._secret,))

    def _error(self, cls: type[ProviderError], message: str, **kw) -> ProviderError:
        return cls(self.provider, self.redact(message), **kw)

    def _backoff(self, attempt: int, retry_after: float | None = None) -> float:
        s = self.settings
        if retry_after is not None:
            return min(retry_after, s.retry_after_cap_s)
        return self._rng.uniform(0, min(s.backoff_max_s, s.backoff_base_s * 2**attempt))

    async def _send(self, client: httpx.AsyncClient, wire: WireRequest) -> WireReply:
        resp = await client.request(wire.method, wire.path, json=wire.json, params=wire.params or None)
        try:
            body: Any = resp.json()
        except ValueError:
            body = resp.text
        return WireReply(resp.status_code, body, dict(resp.headers))

    def _message(self, reply: WireReply) -> tuple[str | None, str]:
        code, message = self.adapter.error_message(reply)
        return code, self.redact(message)

    # -- submit (at most once) -------------------------------------------------------------------

    async def submit(self, wire: WireRequest) -> TaskSnapshot:
        """Send the submit POST; returns the task snapshot the provider answered with.

        Raises SubmitRejected (4xx: nothing exists), ProviderUnavailable (never taken, retries spent)
        or AcceptanceUnknown (a task may exist; never retried here).
        """
        for attempt in range(self.settings.max_retries + 1):
            last = attempt == self.settings.max_retries
            try:
                self.requests_sent["submit"] += 1
                reply = await self._send(self._submit, wire)
            except _NOT_SENT as exc:
                if last:
                    raise self._error(
                        ProviderUnavailable,
                        f"could not connect ({type(exc).__name__}) after {attempt + 1} attempts; nothing was submitted",
                    ) from None
                await self._sleep(self._backoff(attempt))
                continue
            except httpx.TransportError as exc:
                raise self._error(
                    AcceptanceUnknown,
                    f"the connection failed after the submit was sent ({type(exc).__name__}); "
                    "a task may exist and may be billed, so it is not resubmitted automatically",
                ) from None
            snapshot = self.adapter.parse_submit(reply)
            if snapshot is not None:
                return snapshot
            code, message = self._message(reply)
            status = reply.status_code
            if status in NOT_TAKEN_STATUSES:
                if last:
                    raise self._error(
                        ProviderUnavailable,
                        f"{message} (still HTTP {status} after {attempt + 1} attempts; nothing was submitted)",
                        status_code=status,
                        code=code,
                    )
                wait = self._backoff(attempt, parse_retry_after(reply.headers.get("retry-after")))
                self.log.info("%s submit answered HTTP %s; retrying in %.1f s", self.provider, status, wait)
                await self._sleep(wait)
                continue
            if 400 <= status < 500:
                raise self._error(SubmitRejected, message, status_code=status, code=code)
            raise self._error(
                AcceptanceUnknown,
                f"HTTP {status} without a task id ({message}); a task may exist, so it is not resubmitted"
                " automatically",
                status_code=status,
                code=code,
            )
        raise AssertionError("unreachable")

    # -- GETs with retries -----------------------------------------------------------------------

    async def _get(self, client: httpx.AsyncClient, wire: WireRequest, what: str) -> WireReply:
        for attempt in range(self.settings.max_retries + 1):
            last = attempt == self.settings.max_retries
            try:
                self.requests_sent[what] += 1
                reply = await self._send(client, wire)
            except httpx.TransportError as exc:
                if last:
                    raise self._error(
                        ProviderUnavailable,
                        f"{what} request failed ({type(exc).__name__}) after {attempt + 1} attempts",
                    ) from None
                await self._sleep(self._backoff(attempt))
                continue
            if reply.status_code in RETRYABLE_STATUSES and not last:
                await self._sleep(self._backoff(attempt, parse_retry_after(reply.headers.get("retry-after"))))
                continue
            return reply
        raise AssertionError("unreachable")

    async def poll(self, task_id: str, poll_url: str | None = None) -> TaskSnapshot:
        wire = self.adapter.build_poll(task_id, relative_path(poll_url, self.base_url))
        reply = await self._get(self._api, wire, "status")
        if reply.status_code == 404:
            code, message = self._message(reply)
            return TaskSnapshot(
                task_id=task_id,
                state=TaskState.EXPIRED,
                raw_status="HTTP 404",
                error_code=code,
                error=f"the provider no longer has this task ({message})",
            )
        if not 200 <= reply.status_code < 300:
            code, message = self._message(reply)
            cls = ProviderUnavailable if reply.status_code in RETRYABLE_STATUSES else ProviderError
            raise self._error(cls, f"status of task {task_id}: {message}", status_code=reply.status_code, code=code)
        snap = self.adapter.parse_poll(reply)
        return snap if snap.task_id and snap.task_id != "None" else replace(snap, task_id=task_id)

    async def wait(
        self,
        snapshot: TaskSnapshot,
        *,
        started_at: float | None = None,
        on_update: Callable[[TaskSnapshot], Any] | None = None,
        learn: bool = True,
    ) -> TaskSnapshot:
        """Poll until the task is terminal; facts from earlier answers (cost, poll URL) are kept.

        ``learn=False`` for a task that started before ``started_at`` (one resumed after a crash): its
        duration is unknown, and learning the part we saw would pull every later first poll early."""
        start = time.monotonic() if started_at is None else started_at
        snap = snapshot
        running_at = None  # when the task was last asked about and still running
        while not snap.state.terminal:
            elapsed = time.monotonic() - start
            if elapsed > self.settings.task_deadline_s:
                raise self._error(
                    PollTimeout,
                    f"task {snap.task_id} still {snap.raw_status or snap.state.value} after {elapsed:.0f} s"
                    f" (deadline {self.settings.task_deadline_s:.0f} s)",
                )
            await self._sleep(self.schedule.next_delay(elapsed, snap.eta_s))
            asked_at = time.monotonic() - start
            new = await self.poll(snap.task_id, snap.poll_url)
            new = replace(
                new,
                poll_url=new.poll_url or snap.poll_url,
                reported_cost_usd=new.reported_cost_usd
                if new.reported_cost_usd is not None
                else snap.reported_cost_usd,
            )
            if on_update is not None and (new.state, new.progress) != (snap.state, snap.progress):
                on_update(new)
            if not new.state.terminal:
                running_at = asked_at
            snap = new
        if snap.state is TaskState.SUCCEEDED and learn:
            self.schedule.observe(time.monotonic() - start, running_at)
        return snap

    def slot(self) -> asyncio.Semaphore:
        """Hold while a task is in flight at the provider: ``async with client.slot(): ...``."""
        return self._slots

    # -- downloads -------------------------------------------------------------------------------

    def check_download_url(self, url: str, *, redirect: bool = False) -> None:
        parts = urlsplit(url)
        what = "follow a redirect to" if redirect else "download from"
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise self._error(DownloadFailed, f"refusing to {what} a non-http(s) URL ({parts.scheme or 'no'} scheme)")
        if _is_private(parts.hostname) and not self._allow_private:
            raise self._error(DownloadFailed, f"refusing to {what} a private or loopback host ({parts.hostname})")

    async def download(
        self, url: str, fs: fsspec.AbstractFileSystem, path: str, *, task_id: str | None = None
    ) -> DownloadResult:
        """Stream ``url`` into ``path`` in chunks; the file appears only complete and MP4-shaped.

        Redirects are followed here, not by httpx: at most ``MAX_REDIRECTS`` hops, each target checked
        like the first URL (http(s) only, no private hosts unless simulated).
        """
        s = self.settings
        for attempt in range(s.max_retries + 1):
            last = attempt == s.max_retries
            try:
                outcome = await self._download_once(url, fs, path, task_id, retry=not last)
            except _Truncated as exc:
                if last:
                    raise self._error(
                        DownloadFailed, f"output truncated ({exc}) on every attempt", task_id=task_id
                    ) from None
                await self._sleep(self._backoff(attempt))
                continue
            except httpx.TransportError as exc:
                if last:
                    raise self._error(
                        DownloadFailed,
                        f"download failed ({type(exc).__name__}) after {attempt + 1} attempts",
                        task_id=task_id,
                    ) from None
                await self._sleep(self._backoff(attempt))
                continue
            if isinstance(outcome, int):
                return DownloadResult(path=path, size_bytes=outcome, attempts=attempt + 1)
            await self._sleep(self._backoff(attempt, outcome))
        raise self._error(DownloadFailed, "download retries exhausted", task_id=task_id)

    async def _download_once(self, url: str, fs, path: str, task_id: str | None, *, retry: bool) -> int | float | None:
        """One GET (plus its redirects): the stored size, or the Retry-After (None: back off) to retry."""
        s = self.settings
        current = url
        for hop in range(MAX_REDIRECTS + 1):
            self.check_download_url(current, redirect=hop > 0)
            self.requests_sent["download"] += 1
            async with self._download.stream("GET", current) as resp:
                if resp.status_code in REDIRECT_STATUSES:
                    location = resp.headers.get("location")
                    if not location:
                        raise self._error(
                            DownloadFailed,
                            f"output URL answered HTTP {resp.status_code} without a Location",
                            task_id=task_id,
                        )
                    current = urljoin(current, location)
                    continue
                if resp.status_code in EXPIRED_URL_STATUSES:
                    raise self._error(
                        DownloadFailed,
                        f"output URL answered HTTP {resp.status_code} (expired or gone)",
                        task_id=task_id,
                        url_expired=True,
                    )
                if resp.status_code in RETRYABLE_STATUSES and retry:
                    return parse_retry_after(resp.headers.get("retry-after"))
                if resp.status_code != 200:
                    raise self._error(DownloadFailed, f"output URL answered HTTP {resp.status_code}", task_id=task_id)
                expected = (
                    int(resp.headers["content-length"]) if resp.headers.get("content-length", "").isdigit() else None
                )
                if expected is not None and expected > s.download_max_bytes:
                    raise self._error(
                        DownloadFailed,
                        f"output is {expected} bytes, over the {s.download_max_bytes}-byte limit",
                        task_id=task_id,
                    )
                return await self._stream_to(resp, fs, path, expected, task_id)
        raise self._error(DownloadFailed, f"output URL redirected more than {MAX_REDIRECTS} times", task_id=task_id)

    async def _stream_to(self, resp: httpx.Response, fs, path: str, expected: int | None, task_id: str | None) -> int:
        s = self.settings
        size = 0
        head = b""
        async with atomic_writer_async(fs, path) as fh:
            try:
                async for chunk in resp.aiter_bytes(s.download_chunk_bytes):
                    if len(head) < 12:
                        head += chunk[: 12 - len(head)]
                        if len(head) >= 12 and not looks_like_mp4(head):
                            raise self._error(DownloadFailed, "output is not an MP4 (no ftyp box)", task_id=task_id)
                    size += len(chunk)
                    if size > s.download_max_bytes:
                        raise self._error(
                            DownloadFailed, f"output exceeds the {s.download_max_bytes}-byte limit", task_id=task_id
                        )
                    fh.write(chunk)
            except httpx.TransportError as exc:
                raise _Truncated(f"{size} bytes then {type(exc).__name__}") from None
            if expected is not None and size != expected:
                raise _Truncated(f"{size} of {expected} bytes")
            if len(head) < 12 or not looks_like_mp4(head):
                raise self._error(DownloadFailed, "output is not an MP4 (too short or no ftyp box)", task_id=task_id)
        return size

    async def cancel(self, task_id: str) -> bool:
        wire = self.adapter.build_cancel(task_id)
        if wire is None:
            return False
        reply = await self._send(self._api, wire)
        return 200 <= reply.status_code < 300


class _Truncated(Exception):
    pass


def _is_private(host: str) -> bool:
    if host in ("localhost", "localhost.localdomain") or host.endswith(".localhost"):
        return True
    try:
        ip = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return ip.is_loopback or ip.is_private or ip.is_link_local or ip.is_reserved or ip.is_unspecified
