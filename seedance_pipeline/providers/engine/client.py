"""The one I/O engine every adapter shares: HTTP, timeouts, retries, Retry-After, caps, polling, downloads.

Rules (docs/architecture.md, principle 2; docs/providers.md §8.1-8.4):
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
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

import httpx

from seedance_pipeline.core.errors import (
    AcceptanceUnknown,
    ProviderError,
    ProviderUnavailable,
    SubmitRejected,
    TaskLost,
)
from seedance_pipeline.providers.base import ProviderAdapter, WireReply, WireRequest, relative_path
from seedance_pipeline.providers.engine.download import Downloads, is_private_host
from seedance_pipeline.providers.engine.limit import AdaptiveLimit
from seedance_pipeline.providers.engine.redaction import scrub
from seedance_pipeline.providers.engine.retry import (
    NOT_SENT,
    NOT_TAKEN_STATUSES,
    RETRYABLE_STATUSES,
    backoff,
    parse_retry_after,
)
from seedance_pipeline.providers.engine.settings import ClientSettings
from seedance_pipeline.providers.engine.shapes import Schedules
from seedance_pipeline.providers.engine.wait import Waiting
from seedance_pipeline.providers.states import ListedTask, TaskSnapshot

log = logging.getLogger(__name__)


class ProviderClient(Downloads, Waiting):
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
        self.base_url = (base_url or adapter.base_url).rstrip("/")
        self.settings = settings or ClientSettings()
        # One poll schedule per request shape (``wait``'s ``shape``: 480p 4 s and 1080p 12 s differ).
        self.schedules = Schedules(self.settings, sleep)
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
        self.limit = AdaptiveLimit(
            s.max_in_flight,
            min_interval_s=s.throttle_min_interval_s,
            max_interval_s=s.throttle_max_interval_s,
            sleep=sleep,
        )
        self._told_at = -float("inf")
        host = urlsplit(self.base_url).hostname or ""
        self._allow_private = s.allow_private_hosts if s.allow_private_hosts is not None else is_private_host(host)
        self.requests_sent = {"submit": 0, "status": 0, "download": 0, "cancel": 0, "list": 0}

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
        return backoff(self.settings, self._rng, attempt, retry_after)

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

    async def submit(self, wire: WireRequest, *, patient: bool = False) -> TaskSnapshot:
        """Send the submit POST; returns the task snapshot the provider answered with.

        Raises SubmitRejected (4xx: nothing exists), ProviderUnavailable (never taken, retries spent)
        or AcceptanceUnknown (a task may exist; never retried here). ``patient``: a 429 is waited out (under
        the adaptive limit, ``limit.py``) until ``throttle_deadline_s`` instead of counting against the retries;
        for a clip with no other provider to fail over to.
        """
        deadline = time.monotonic() + self.settings.throttle_deadline_s
        attempt = 0
        while True:
            last = attempt >= self.settings.max_retries
            await self.limit.pace()
            try:
                self.requests_sent["submit"] += 1
                reply = await self._send(self._submit, wire)
            except NOT_SENT as exc:
                if last:
                    raise self._error(
                        ProviderUnavailable,
                        f"could not connect ({type(exc).__name__}) after {attempt + 1} attempts; nothing was submitted",
                    ) from None
                await self._sleep(self._backoff(attempt))
                attempt += 1
                continue
            except httpx.TransportError as exc:
                raise self._error(
                    AcceptanceUnknown,
                    f"the connection failed after the submit was sent ({type(exc).__name__}); "
                    "a task may exist and may be billed, so it is not resubmitted automatically",
                ) from None
            snapshot = self.adapter.parse_submit(reply)
            if snapshot is not None:
                await self.limit.accepted()
                return snapshot
            code, message = self._message(reply)
            status = reply.status_code
            if status in NOT_TAKEN_STATUSES:
                retry_after = parse_retry_after(reply.headers.get("retry-after"))
                if status == 429:
                    self._throttled(retry_after)
                    if patient and time.monotonic() < deadline:
                        if retry_after:  # the provider's own pacing; without it, limit.pace() spaces the retry
                            await self._sleep(min(retry_after, self.settings.retry_after_cap_s))
                        continue
                if last:
                    raise self._error(
                        ProviderUnavailable,
                        f"{message} (still HTTP {status} after {attempt + 1} attempts; nothing was submitted)",
                        status_code=status,
                        code=code,
                    )
                wait = self._backoff(attempt, retry_after)
                self.log.info("%s submit answered HTTP %s; retrying in %.1f s", self.provider, status, wait)
                await self._sleep(wait)
                attempt += 1
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

    def _throttled(self, retry_after: float | None) -> None:
        if self.limit.throttled(retry_after=retry_after is not None) and time.monotonic() - self._told_at > 30:
            self._told_at = time.monotonic()
            self.log.warning(
                "%s is throttling (HTTP 429, %d so far): now %s",
                self.provider,
                self.limit.throttles,
                self.limit.describe(),
            )

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
            # A task we were given the id of, gone: forgotten after it ended, not a free failure (§8.6).
            code, message = self._message(reply)
            raise self._error(
                TaskLost,
                f"the provider no longer knows this task ({message}); it most likely finished and was billed",
                task_id=task_id,
                code=code,
            )
        if not 200 <= reply.status_code < 300:
            code, message = self._message(reply)
            cls = ProviderUnavailable if reply.status_code in RETRYABLE_STATUSES else ProviderError
            raise self._error(cls, f"status of task {task_id}: {message}", status_code=reply.status_code, code=code)
        snap = self.adapter.parse_poll(reply)
        return snap if snap.task_id and snap.task_id != "None" else replace(snap, task_id=task_id)

    async def cancel(self, task_id: str) -> TaskSnapshot | None:
        """The task's state after a cancel, or None without a cancel endpoint. Retried only as a GET is. Where the
        provider cancels only some states (``cancellable_states``), a task in another is left alone (polled only)."""
        wire = self.adapter.build_cancel(task_id)
        if wire is None:
            return None
        narrowed = self.adapter.cancellable_states != ProviderAdapter.cancellable_states
        if narrowed and (before := await self.poll(task_id)).state not in self.adapter.cancellable_states:
            return before
        reply = await self._get(self._api, wire, "cancel")
        if not 200 <= reply.status_code < 300:
            code, message = self._message(reply)
            # A refusal: the task may have left the cancellable state since it was asked for.
            after = await self.poll(task_id) if narrowed and 400 <= reply.status_code < 500 else None
            if after is not None and after.state not in self.adapter.cancellable_states:
                return replace(after, error=message)
            raise self._error(
                ProviderError, f"cancel of task {task_id}: {message}", status_code=reply.status_code, code=code
            )
        if (snap := self.adapter.parse_cancel(reply)) is None:
            return await self.poll(task_id)
        return snap if snap.task_id and snap.task_id != "None" else replace(snap, task_id=task_id)

    async def list_tasks(self) -> tuple[list[ListedTask], bool] | None:
        """The account's recent tasks, newest first, and whether the list is complete (not cut at a page);
        None when the provider has no list. One page: its paging is undocumented (docs/providers.md §4.7)."""
        wire = self.adapter.build_list()
        if wire is None:
            return None
        reply = await self._get(self._api, wire, "list")
        if not 200 <= reply.status_code < 300:
            code, message = self._message(reply)
            cls = ProviderUnavailable if reply.status_code in RETRYABLE_STATUSES else ProviderError
            raise self._error(cls, f"task list: {message}", status_code=reply.status_code, code=code)
        return self.adapter.parse_list(reply)

    def slot(self) -> AdaptiveLimit:
        """Hold while a task is in flight at the provider: ``async with client.slot(): ...``."""
        return self.limit
