"""One clip, end to end: submit (or resume), wait, download into storage, reporting each step to a journal.

``generate_clip`` reports each step to an optional journal the moment it happens (intent before the POST,
task id as soon as it is known, outcome at the end), so a crash at any point can be resumed from the record.
"""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Protocol

import fsspec

from seedance_pipeline.clip.prepare import PreparedRequest
from seedance_pipeline.core.errors import DownloadFailed, TaskFailed
from seedance_pipeline.providers.engine import ProviderClient
from seedance_pipeline.providers.engine.download import PNG
from seedance_pipeline.providers.states import TaskSnapshot, TaskState
from seedance_pipeline.storage.atomic import atomic_writer_async


class Journal(Protocol):
    """Write-ahead record of one attempt. Each call must be durable before it returns. Calls are made on a
    worker thread (storage may be an object store: its writes must not stall the other clips' I/O), one
    at a time per attempt."""

    def intent(self, prepared: PreparedRequest) -> None: ...
    def accepted(self, prepared: PreparedRequest, snapshot: TaskSnapshot) -> None: ...
    def finished(self, prepared: PreparedRequest, result: ClipResult | None, error: Exception | None) -> None: ...


@dataclass
class ClipResult:
    provider: str
    task_id: str
    status: str
    output: str
    source_url: str | None
    estimated_cost_usd: float
    reported_cost_usd: float | None
    fingerprint: str
    seed: int | None
    size_bytes: int
    url_ttl_s: float | None
    timings: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    last_frame: str | None = None  # where the clip's last frame was stored, where the provider returned one

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Tee:
    """Writes to the stored file and to a buffer kept in memory."""

    def __init__(self, fh, kept: io.BytesIO):
        self.fh, self.kept = fh, kept

    def write(self, data: bytes) -> int:
        self.kept.write(data)
        return self.fh.write(data)


@asynccontextmanager
async def _sink(fs: fsspec.AbstractFileSystem, path: str, keep: io.BytesIO | None) -> AsyncIterator:
    """The MP4 appears whole or not at all; with ``keep``, its bytes also stay in memory (emptied at each
    try, so a download tried again keeps only what was stored)."""
    async with atomic_writer_async(fs, path) as fh:
        if keep is None:
            yield fh
            return
        keep.seek(0)
        keep.truncate()
        yield _Tee(fh, keep)


def _seed_used(prepared: PreparedRequest, snap: TaskSnapshot) -> int | None:
    reported = snap.extra.get("seed")
    try:
        return (
            int(reported) if reported is not None else (prepared.request.seed if prepared.request.seed >= 0 else None)
        )
    except (TypeError, ValueError):
        return None


async def generate_clip(
    client: ProviderClient,
    prepared: PreparedRequest,
    fs: fsspec.AbstractFileSystem,
    dest_path: str,
    *,
    journal: Journal | None = None,
    on_update: Callable[[TaskSnapshot], Any] | None = None,
    resume: TaskSnapshot | None = None,
    patient: bool = True,
    keep: io.BytesIO | None = None,
    last_frame_path: str | None = None,
    while_held: Callable[[], Any] | None = None,
) -> ClipResult:
    """Submit (or resume ``resume``), wait, download into ``dest_path``. Raises ProviderError subclasses.

    ``patient``: the provider is the clip's last choice, so its 429s are waited out (``ProviderClient.submit``);
    False when another provider could take the clip instead. ``keep``: a buffer that ends up holding the
    stored bytes, so an object store's clip can be checked without downloading it again. ``last_frame_path``: where
    the clip's last frame goes when the provider returns one (``last_frame_url``, ModelArk); a last frame that
    cannot be fetched is a warning, never a failed clip. ``while_held``: called on a worker thread after the submit,
    while the request's images are still in memory (the content checks take their thumbnails then)."""
    t0 = time.monotonic()

    def sink():
        return _sink(fs, dest_path, keep)

    timings: dict[str, float] = {}
    try:
        async with client.slot():
            # The poll schedule counts from when the task starts: neither the wait for a slot (counted from
            # t0, a clip that queued 200 s behind the cap was first polled up to 30 s after submit) nor the
            # intent's write is task time, and the write's jitter would blur the durations it learns.
            t_start = time.monotonic()
            if resume is None:
                # The images are read here, once, on a worker thread, and kept only until the request has left:
                # a run keeps the images of its slots in memory, not every image it will send.
                with prepared.held_images():
                    await asyncio.to_thread(_before_submit, prepared, journal)  # the intent durable before the POST
                    t_start = time.monotonic()
                    snap = await client.submit(prepared.wire, patient=patient)
                    timings["submit_s"] = time.monotonic() - t0
                    await asyncio.to_thread(_after_submit, prepared, journal, snap, while_held)
            else:
                snap = resume
            snap = await client.wait(
                snap,
                started_at=t_start,
                on_update=on_update,
                learn=resume is None,
                shape=prepared.request.latency_shape(),
            )
            timings["task_s"] = time.monotonic() - t0
        if snap.state is not TaskState.SUCCEEDED:
            raise TaskFailed(
                client.provider,
                client.redact(snap.error or snap.raw_status),
                task_id=snap.task_id,
                state=snap.state.value,
                moderation=snap.moderation,
                code=snap.error_code,
            )
        assert snap.output_url is not None
        try:
            dl = await client.download(snap.output_url, sink, task_id=snap.task_id)
        except DownloadFailed as exc:
            if not exc.url_expired:
                raise
            # An expired URL may be refreshed by asking again (JieKou/Novita issue per-request URLs).
            fresh = await client.poll(snap.task_id, snap.poll_url)
            if fresh.state is not TaskState.SUCCEEDED or not fresh.output_url or fresh.output_url == snap.output_url:
                raise
            snap = replace(snap, output_url=fresh.output_url)
            dl = await client.download(fresh.output_url, sink, task_id=snap.task_id)
        warnings = list(prepared.warnings)
        last_frame = await _last_frame(client, snap, fs, last_frame_path, warnings) if last_frame_path else None
        timings["total_s"] = time.monotonic() - t0
        result = ClipResult(
            provider=client.provider,
            task_id=snap.task_id,
            status=snap.state.value,
            output=dest_path,
            source_url=snap.output_url,
            estimated_cost_usd=prepared.estimate.usd,
            reported_cost_usd=snap.reported_cost_usd,
            fingerprint=prepared.fingerprint,
            seed=_seed_used(prepared, snap),
            size_bytes=dl.size_bytes,
            url_ttl_s=snap.url_ttl_s if snap.url_ttl_s is not None else client.adapter.output_url_ttl_s,
            timings={k: round(v, 3) for k, v in timings.items()},
            warnings=warnings,
            last_frame=last_frame,
        )
    except Exception as exc:
        if journal:
            await asyncio.to_thread(journal.finished, prepared, None, exc)
        raise
    if journal:
        await asyncio.to_thread(journal.finished, prepared, result, None)
    return result


def _before_submit(prepared: PreparedRequest, journal: Journal | None) -> None:
    """Reads the request's images (raises InvalidRequest if one changed since it was planned), then writes the
    intent: a request whose image cannot be sent leaves no intent and costs nothing."""
    if prepared.source_images is not None:
        prepared.source_images()
    if journal:
        journal.intent(prepared)


def _after_submit(
    prepared: PreparedRequest, journal: Journal | None, snap: TaskSnapshot, while_held: Callable[[], Any] | None
) -> None:
    if journal:
        journal.accepted(prepared, snap)
    if while_held is not None:
        while_held()


async def _last_frame(
    client: ProviderClient, snap: TaskSnapshot, fs: fsspec.AbstractFileSystem, path: str, warnings: list[str]
) -> str | None:
    """The clip's last frame stored at ``path`` (whole or not at all), where the task's answer carries one."""
    url = snap.extra.get("last_frame_url")
    if not isinstance(url, str) or not url:
        return None
    try:
        await client.download(url, lambda: atomic_writer_async(fs, path), task_id=snap.task_id, expect=PNG)
    except DownloadFailed as exc:
        warnings.append(f"the clip's last frame was not stored: {exc}")
        return None
    return path
