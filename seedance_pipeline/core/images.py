"""Input images as the pipeline sees them: bytes, format and pixel size, checked before anything is sent.

An image reference is a local path, an fsspec URL (``s3://…``, ``file://…``) or an http(s) URL. The bytes are
read once (``clip/images.py``): they feed validation (format, pixel size, aspect), the request fingerprint,
and the ``data:`` URI for providers that accept one. A plan instead takes the facts registration recorded
(``planning/images.py``) and reads an image's bytes when a request that carries them is sent, keeping them only
while they are held (``HeldBytes``). Decoding here is Pillow's header parse, no I/O.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import hashlib
import io
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import PurePosixPath

from PIL import Image, UnidentifiedImageError
from pillow_heif import register_heif_opener

from seedance_pipeline.core.errors import InvalidRequest

# Pillow opens HEIC/HEIF (format name "HEIF") through pillow-heif's plugin: ModelArk accepts them, the resellers do
# not (each adapter's Capabilities.image_formats), so a HEIC image gets a clear refusal where it cannot be sent.
register_heif_opener()

MAX_IMAGE_BYTES = 30 * 1024 * 1024  # "< 30 MB" (docs/providers.md §2.5)

# File name extensions and the decoded format they promise.
_EXTENSION_FORMATS = {
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".png": "PNG",
    ".webp": "WEBP",
    ".gif": "GIF",
    ".bmp": "BMP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".heic": "HEIF",
    ".heif": "HEIF",
}


class HeldBytes:
    """An image's bytes, read (``load``) when asked for and kept in memory only while held: a run keeps the images
    of the requests it is sending, not every image of the run (benchmarks/README.md, M30). Thread-safe; two
    holders of one image share one read. ``held`` never waits for a read (the event loop takes and leaves holds)."""

    def __init__(self, load: Callable[[], bytes]):
        self._load = load
        self._lock = threading.Lock()  # the holders and the bytes: held briefly, never across a read
        self._reading = threading.Lock()  # one read of this image at a time: a second caller waits for its bytes
        self._holders = 0
        self._data: bytes | None = None

    def __call__(self) -> bytes:
        with self._lock:
            if self._data is not None:
                return self._data
        with self._reading:
            with self._lock:
                if self._data is not None:
                    return self._data
            data = self._load()
            with self._lock:
                if self._holders:
                    self._data = data
            return data

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        with self._lock:
            self._holders += 1
        try:
            yield
        finally:
            with self._lock:
                self._holders -= 1
                if not self._holders:
                    self._data = None


@dataclass(frozen=True, eq=False)
class ImageData:
    """An image's facts, and its bytes on demand: read from the file (or kept from the read that found the
    facts) only when a request that carries them is sent, so a plan of the whole catalog holds no image."""

    ref: str
    format: str  # Pillow's name: JPEG, PNG, WEBP, ...
    width: int
    height: int
    size: int  # bytes
    sha256: str
    read: Callable[[], bytes] = dataclasses.field(repr=False)

    @property
    def data(self) -> bytes:
        return self.read()

    def held(self) -> contextlib.AbstractContextManager[None]:
        """Within this block the bytes, once read, are kept (``HeldBytes``); bytes already in memory always are."""
        return self.read.held() if isinstance(self.read, HeldBytes) else contextlib.nullcontext()

    @property
    def mime(self) -> str:
        return Image.MIME.get(self.format, f"image/{self.format.lower()}")

    def data_uri(self) -> str:
        """Built at each call, never kept: a plan of the whole catalog would otherwise hold every image twice."""
        return f"data:{self.mime};base64,{base64.b64encode(self.data).decode('ascii')}"

    @cached_property
    def data_uri_sha256(self) -> str:
        """``sent_sha256`` of the data URI (asked once per clip and provider that is sent one)."""
        return sent_sha256(self.data_uri())


def sent_sha256(reference: str) -> str:
    """SHA-256 of an image reference exactly as it went on the wire (URL or data URI): what matches a provider's
    listed input to an attempt without keeping the reference (a presigned URL is a credential while it lives)."""
    return hashlib.sha256(reference.encode()).hexdigest()


def is_http_url(ref: str) -> bool:
    return ref.startswith(("http://", "https://"))


def inspect_image(ref: str, data: bytes, field: str = "image") -> ImageData:
    """Decode just enough to know the format and pixel size; the name must not lie about the format."""
    if len(data) >= MAX_IMAGE_BYTES:
        raise InvalidRequest(field, ref, "image files must be smaller than 30 MB")
    try:
        with Image.open(io.BytesIO(data)) as img:
            fmt, (width, height) = img.format, img.size
            img.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise InvalidRequest(field, ref, f"not a readable image ({exc.__class__.__name__})") from None
    if not fmt:
        raise InvalidRequest(field, ref, "not a readable image (unknown format)")
    if not is_http_url(ref):
        suffix = PurePosixPath(ref.split("?", 1)[0]).suffix.lower()
        promised = _EXTENSION_FORMATS.get(suffix)
        if promised and promised != fmt:
            raise InvalidRequest(
                field, ref, f"the file name says {promised} but the content is {fmt}; rename it or convert it"
            )
    return ImageData(
        ref=ref,
        format=fmt,
        width=width,
        height=height,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        read=lambda: data,
    )
