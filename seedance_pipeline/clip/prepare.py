"""Preparing one clip's request: everything that can fail before money is spent, with nothing sent.

Validate against the provider's documented limits, read and inspect the images, decide how each image
reaches the provider (URL, data URI or presigned URL), compute the request fingerprint (the idempotency
key) and the cost estimate, and build the wire request.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import fsspec
from pydantic import ValidationError

from seedance_pipeline import pricing
from seedance_pipeline.clip.images import load_image
from seedance_pipeline.core import model_spec
from seedance_pipeline.core.errors import InvalidRequest
from seedance_pipeline.core.images import ImageData, is_http_url, sent_sha256
from seedance_pipeline.core.request import WIRE_FIELDS, GenerationRequest
from seedance_pipeline.providers.base import ImageRefs, ProviderAdapter, WireRequest
from seedance_pipeline.providers.validation import validate_image, validate_request, wire_aspect_ratio

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
    # Builds the wire request when it is sent: a plan of the whole catalog holds a PreparedRequest per clip and
    # provider, and none of their bodies (``wire`` builds a new one at each use).
    build_wire: Callable[[], WireRequest]
    fingerprint: str
    aspect_ratio_sent: str
    width: int
    height: int
    estimate: pricing.CostEstimate
    image_sha256: str
    last_image_sha256: str | None
    warnings: tuple[str, ...] = ()
    image_wire_kind: str = "url"  # url | data-uri | presigned-url
    # core.images.sent_sha256 of the image reference as sent: matches a provider's task list to this attempt.
    # Computed when asked (the attempt's record): for a data URI it is a pass over the image's bytes.
    sent_image_sha256: Callable[[], str] = str  # str() is "": not known (an attempt collected from its record)
    # The image's and the last image's bytes, for the content checks (read when asked, kept only while
    # ``held_images`` holds them). None: not at hand (an attempt collected from its record).
    source_images: Callable[[], tuple[bytes, bytes | None]] | None = None
    # Within this block the images' bytes, once read, stay in memory (``core.images.HeldBytes``): while the request
    # is sent, so it is read once for the intent's record, the wire body and the content checks' thumbnails.
    held_images: Callable[[], contextlib.AbstractContextManager[None]] = contextlib.nullcontext

    @property
    def wire(self) -> WireRequest:
        return self.build_wire()

    @property
    def image_sent_sha256(self) -> str:
        return self.sent_image_sha256()

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
            "image_sent_sha256": self.image_sent_sha256,
        }


def fingerprint(provider: str, req: GenerationRequest, image_sha: str, last_image_sha: str | None) -> str:
    """The idempotency key: image bytes + normalised request + provider + model (docs/architecture.md): the
    SHA-256 of ``json.dumps(doc, sort_keys=True, separators=(",", ":"))`` for

        {"model": MODEL_NAME, "provider": provider, "request": {the request's WIRE_FIELDS}, "image": image_sha,
         "last_image": last_image_sha}

    The keys sort as image, last_image, model, provider, request, so the text after the two image hashes is the
    same for every clip of a prompt at a provider: it is built once per request shape (a plan of 100,000 clips
    fingerprints them all), and the result is byte for byte that ``json.dumps``."""
    tail = _fingerprint_tail(provider, req.wire_values())
    # Hex digests need no escaping: json.dumps of one is the digest in quotes.
    last = "null" if last_image_sha is None else f'"{last_image_sha}"'
    head = f'{{"image":"{image_sha}","last_image":{last},'
    return hashlib.sha256((head + tail).encode()).hexdigest()


@functools.lru_cache(maxsize=1024)
def _fingerprint_tail(provider: str, wire_values: tuple[Any, ...]) -> str:
    """``"model":...,"provider":...,"request":{...}}``: the end of the fingerprint document."""
    request = dict(zip(WIRE_FIELDS, wire_values, strict=True))
    doc = {"model": model_spec.MODEL_NAME, "provider": provider, "request": request}
    return json.dumps(doc, sort_keys=True, separators=(",", ":"))[1:]


def _image_for_wire(
    adapter: ProviderAdapter, field_name: str, img: ImageData, presign: Presigner | None
) -> tuple[Callable[[], str], str, Callable[[], str]]:
    """(what makes the reference as sent, how it is sent, what gives its ``sent_sha256``). A data URI is made
    only when the request is sent or recorded: a plan keeps none, and one that sends nothing reads no image."""
    if is_http_url(img.ref):
        return functools.partial(str, img.ref), "url", functools.partial(sent_sha256, img.ref)
    if adapter.capabilities.accepts_data_uri:
        return img.data_uri, "data-uri", lambda: img.data_uri_sha256
    url = presign(img.ref) if presign else None
    if url:
        return functools.partial(str, url), "presigned-url", functools.partial(sent_sha256, url)
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
    image_wire, kind, image_sent = _image_for_wire(adapter, "image", first, presign)
    last_wire = _image_for_wire(adapter, "last_image", last, presign)[0] if last else None
    ratio = wire_aspect_ratio(caps, req.aspect_ratio, first)

    def build_wire() -> WireRequest:
        refs = ImageRefs(image_wire(), last_wire() if last_wire else None)
        return adapter.build_submit(req, refs, ratio)

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
        build_wire=build_wire,
        fingerprint=fingerprint(adapter.name, req, first.sha256, last.sha256 if last else None),
        aspect_ratio_sent=ratio,
        width=width,
        height=height,
        estimate=estimate,
        image_sha256=first.sha256,
        last_image_sha256=last.sha256 if last else None,
        warnings=tuple(warnings),
        image_wire_kind=kind,
        sent_image_sha256=image_sent,
        source_images=lambda: (first.data, last.data if last is not None else None),
        held_images=functools.partial(_held, first, last),
    )


@contextlib.contextmanager
def _held(*images: ImageData | None) -> Iterator[None]:
    with contextlib.ExitStack() as stack:
        for img in images:
            if img is not None:
                stack.enter_context(img.held())
        yield
