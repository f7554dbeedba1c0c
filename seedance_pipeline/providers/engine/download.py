"""Downloads of task outputs: streamed in chunks, redirects checked hop by hop, truncation retried.

Output URLs live on hosts other than the provider's API, so the download client never carries the API key,
and never follows a URL to a private or loopback host unless the provider's own base URL is one (the
simulator). The engine writes into whatever ``sink`` opens; it knows nothing of storage.
"""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urljoin, urlsplit

import httpx

from seedance_pipeline.core.errors import DownloadFailed, ProviderError
from seedance_pipeline.core.mp4 import looks_like_mp4
from seedance_pipeline.providers.engine.retry import RETRYABLE_STATUSES, parse_retry_after
from seedance_pipeline.providers.engine.settings import ClientSettings

EXPIRED_URL_STATUSES = frozenset({401, 403, 404, 410})
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 5


class Writable(Protocol):
    def write(self, data: bytes, /) -> object: ...


Sink = Callable[[], AbstractAsyncContextManager[Writable]]


@dataclass(frozen=True)
class Expect:
    """What a download must be: checked on its first 12 bytes (``what`` and ``mark`` name it in errors)."""

    what: str
    mark: str
    looks_right: Callable[[bytes], bool]


MP4 = Expect("an MP4", "ftyp box", looks_like_mp4)
PNG = Expect("a PNG image", "PNG signature", lambda head: head.startswith(b"\x89PNG\r\n\x1a\n"))


@dataclass(frozen=True)
class DownloadResult:
    size_bytes: int
    attempts: int


class Downloads:
    """The download half of ``ProviderClient`` (mixed in; it provides these attributes)."""

    settings: ClientSettings
    requests_sent: dict[str, int]
    _download: httpx.AsyncClient
    _allow_private: bool
    _sleep: Callable[[float], Awaitable[None]]
    _rng: random.Random

    def _error(self, cls: type[ProviderError], message: str, **kw: Any) -> ProviderError:
        raise NotImplementedError

    def _backoff(self, attempt: int, retry_after: float | None = None) -> float:
        raise NotImplementedError

    def check_download_url(self, url: str, *, redirect: bool = False) -> None:
        parts = urlsplit(url)
        what = "follow a redirect to" if redirect else "download from"
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise self._error(DownloadFailed, f"refusing to {what} a non-http(s) URL ({parts.scheme or 'no'} scheme)")
        if is_private_host(parts.hostname) and not self._allow_private:
            raise self._error(DownloadFailed, f"refusing to {what} a private or loopback host ({parts.hostname})")

    async def download(
        self, url: str, sink: Sink, *, task_id: str | None = None, expect: Expect = MP4
    ) -> DownloadResult:
        """Stream ``url`` in chunks into a handle ``sink()`` opens; it must keep the file only if its block ends
        without an error (``storage.atomic.atomic_writer_async``), so a file appears only complete and shaped as
        ``expect`` says (an MP4, or the PNG of a last frame).

        Redirects are followed here, not by httpx: at most ``MAX_REDIRECTS`` hops, each target checked
        like the first URL (http(s) only, no private hosts unless simulated).
        """
        s = self.settings
        for attempt in range(s.max_retries + 1):
            last = attempt == s.max_retries
            try:
                outcome = await self._download_once(url, sink, task_id, expect, retry=not last)
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
                return DownloadResult(size_bytes=outcome, attempts=attempt + 1)
            await self._sleep(self._backoff(attempt, outcome))
        raise self._error(DownloadFailed, "download retries exhausted", task_id=task_id)

    async def _download_once(
        self, url: str, sink: Sink, task_id: str | None, expect: Expect, *, retry: bool
    ) -> int | float | None:
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
                return await self._stream_to(resp, sink, expected, task_id, expect)
        raise self._error(DownloadFailed, f"output URL redirected more than {MAX_REDIRECTS} times", task_id=task_id)

    async def _stream_to(
        self, resp: httpx.Response, sink: Sink, expected: int | None, task_id: str | None, expect: Expect
    ) -> int:
        s = self.settings
        size = 0
        head = b""
        async with sink() as fh:
            try:
                async for chunk in resp.aiter_bytes(s.download_chunk_bytes):
                    if len(head) < 12:
                        head += chunk[: 12 - len(head)]
                        if len(head) >= 12 and not expect.looks_right(head):
                            raise self._error(
                                DownloadFailed, f"output is not {expect.what} (no {expect.mark})", task_id=task_id
                            )
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
            if len(head) < 12 or not expect.looks_right(head):
                raise self._error(
                    DownloadFailed, f"output is not {expect.what} (too short or no {expect.mark})", task_id=task_id
                )
        return size


class _Truncated(Exception):
    pass


def is_private_host(host: str) -> bool:
    """Loopback, private, link-local and reserved hosts: never a download target unless the provider itself is."""
    if host in ("localhost", "localhost.localdomain") or host.endswith(".localhost"):
        return True
    try:
        ip = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return ip.is_loopback or ip.is_private or ip.is_link_local or ip.is_reserved or ip.is_unspecified
