"""One clip, end to end: prepare (validate, resolve images, fingerprint, estimate), submit, wait, store.

``prepare`` does everything that can fail before money is spent. ``generate_clip`` reports each step
to an optional journal the moment it happens (intent before the POST, task id as soon as it is known,
outcome at the end), so a crash at any point can be resumed from the record.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Protocol

import fsspec
from pydantic import ValidationError

from seedance_pipeline import pricing
from seedance_pipeline.clip.images import load_image
from seedance_pipeline.core import model_spec
from seedance_pipeline.core.errors import DownloadFailed, InvalidRequest, TaskFailed
from seedance_pipeline.core.images import ImageData, is_http_url
from seedance_pipeline.core.request import GenerationRequest
from seedance_pipeline.providers.base import ImageRefs, ProviderAdapter, WireRequest
from seedance_pipeline.providers.engine import ProviderClient
from seedance_pipeline.providers.states import TaskSnapshot, TaskState
from seedance_pipeline.providers.validation import validate_image, validate_request, wire_aspect_ratio
from seedance_pipeline.storage.atomic import atomic_writer_async

Presigner = Callable[[str], "str | None"]


def build_request(**fields: Any) -> GenerationRequest:
    """A GenerationRequest, or an InvalidRequest naming the first bad field, value and rule."""
    if fields.get("aspect_ratio") == "auto":
        raise InvalidRequest(
            "aspect_ratio", "auto", "write 'adaptive'; it is sent as 'auto' to the providers that call it so"
        )
    try:
        return GenerationRequest(**{k: v for k, v in fields.items() if v is not None})
    except ValidationError as exc:
        err = exc.errors()[0]
        name = ".".join(str(p) for p in err["loc"]) or "request"
        raise InvalidRequest(name, err.get("input"), err["msg"]) from None


def default_presigner(ref: str, expires_s: int = 3600) -> str | None:
    """A presigned GET URL when the reference lives in storage that can sign (s3://), else None."""
    fs, path = fsspec.core.url_to_fs(ref)
    try:
        return fs.sign(path, expiration=expires_s)
    except NotImplementedError:
        return None


@dataclass(frozen=True)
class PreparedRequest:
    provider: str
    request: GenerationRequest
    wire: WireRequest
    fingerprint: str
    aspect_ratio_sent: str
    width: int
    height: int
    estimate: pricing.CostEstimate
    image_sha256: str
    last_image_sha256: str | None
    warnings: tuple[str, ...] = ()
    image_wire_kind: str = "url"  # url | data-uri | presigned-url

    def describe(self) -> dict[str, Any]:
        """The request as it may be shown or stored: no image payloads, no secrets."""
        return {
            **self.request.model_dump(),
            "provider": self.provider,
            "model": model_spec.MODEL_NAME,
            "aspect_ratio_sent": self.aspect_ratio_sent,
            "width": self.width,
            "height": self.height,
            "image_sha256": self.image_sha256,
            "last_image_sha256": self.last_image_sha256,
            "image_sent_as": self.image_wire_kind,
        }


def fingerprint(provider: str, req: GenerationRequest, image_sha: str, last_image_sha: str | None) -> str:
    """The idempotency key: image bytes + normalised request + provider + model (DESIGN.md)."""
    doc = {
        "model": model_spec.MODEL_NAME,
        "provider": provider,
        "request": req.wire_fields(),
        "image": image_sha,
        "last_image": last_image_sha,
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _image_for_wire(
    adapter: ProviderAdapter, field_name: str, img: ImageData, presign: Presigner | None
) -> tuple[str, str]:
    if is_http_url(img.ref):
        return img.ref, "url"
    if adapter.capabilities.accepts_data_uri:
        return img.data_uri(), "data-uri"
    url = presign(img.ref) if presign else None
    if url:
        return url, "presigned-url"
    raise InvalidRequest(
        field_name,
        img.ref,
        f"{adapter.name} accepts images only as URLs: pass an http(s) URL, or keep the image in storage "
        "that can presign URLs (s3://...)",
        adapter.name,
    )


def prepare(
    adapter: ProviderAdapter,
    req: GenerationRequest,
    *,
    presign: Presigner | None = None,
    images: dict[str, ImageData] | None = None,
) -> PreparedRequest:
    """Everything that can fail before spending: raises InvalidRequest, sends nothing to the provider.

    ``images`` may hold already-loaded images by reference (the pipeline reads each image once).
    """
    caps = adapter.capabilities
    warnings = validate_request(adapter.name, caps, req)
    loaded = images or {}
    first = loaded.get(req.image) or load_image(req.image, "image")
    validate_image(adapter.name, caps, "image", first)
    last = None
    if req.last_image:
        last = loaded.get(req.last_image) or load_image(req.last_image, "last_image")
        validate_image(adapter.name, caps, "last_image", last)
    image_wire, kind = _image_for_wire(adapter, "image", first, presign)
    last_wire = _image_for_wire(adapter, "last_image", last, presign)[0] if last else None
    ratio = wire_aspect_ratio(caps, req.aspect_ratio, first)
    width, height = model_spec.pixel_size(req.aspect_ratio, req.resolution, (first.width, first.height))
    estimate = pricing.estimate(
        adapter.name,
        resolution=req.resolution,
        duration_s=req.duration,
        generate_audio=req.generate_audio,
        width=width,
        height=height,
        service_tier=req.service_tier,
    )
    return PreparedRequest(
        provider=adapter.name,
        request=req,
        wire=adapter.build_submit(req, ImageRefs(image_wire, last_wire), ratio),
        fingerprint=fingerprint(adapter.name, req, first.sha256, last.sha256 if last else None),
        aspect_ratio_sent=ratio,
        width=width,
        height=height,
        estimate=estimate,
        image_sha256=first.sha256,
        last_image_sha256=last.sha256 if last else None,
        warnings=tuple(warnings),
        image_wire_kind=kind,
    )


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

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


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
) -> ClipResult:
    """Submit (or resume ``resume``), wait, download into ``dest_path``. Raises ProviderError subclasses."""
    t0 = time.monotonic()
    sink = functools.partial(atomic_writer_async, fs, dest_path)  # the MP4 appears whole or not at all
    timings: dict[str, float] = {}
    try:
        async with client.slot():
            # The poll schedule counts from when the task starts: neither the wait for a slot (counted from
            # t0, a clip that queued 200 s behind the cap was first polled up to 30 s after submit) nor the
            # intent's write is task time, and the write's jitter would blur the durations it learns.
            t_start = time.monotonic()
            if resume is None:
                if journal:
                    await asyncio.to_thread(journal.intent, prepared)  # durable before the POST leaves
                t_start = time.monotonic()
                snap = await client.submit(prepared.wire)
                timings["submit_s"] = time.monotonic() - t0
                if journal:
                    await asyncio.to_thread(journal.accepted, prepared, snap)
            else:
                snap = resume
            snap = await client.wait(snap, started_at=t_start, on_update=on_update, learn=resume is None)
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
            dl = await client.download(snap.output_url, sink, task_id=snap.task_id)
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
            url_ttl_s=snap.url_ttl_s,
            timings={k: round(v, 3) for k, v in timings.items()},
            warnings=list(prepared.warnings),
        )
    except Exception as exc:
        if journal:
            await asyncio.to_thread(journal.finished, prepared, None, exc)
        raise
    if journal:
        await asyncio.to_thread(journal.finished, prepared, result, None)
    return result
