"""Input images as the pipeline sees them: bytes, format and pixel size, checked before anything is sent.

An image reference is a local path, an fsspec URL (``s3://…``, ``file://…``) or an http(s) URL. The bytes are
read once (``clip/images.py``): they feed validation (format, pixel size, aspect), the request fingerprint,
and the ``data:`` URI for providers that accept one. Decoding here is Pillow's header parse, no I/O.
"""

from __future__ import annotations

import base64
import hashlib
import io
from dataclasses import dataclass
from functools import cached_property
from pathlib import PurePosixPath

from PIL import Image, UnidentifiedImageError

from seedance_pipeline.core.errors import InvalidRequest

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
}


@dataclass(frozen=True)
class ImageData:
    ref: str
    data: bytes
    format: str  # Pillow's name: JPEG, PNG, WEBP, ...
    width: int
    height: int

    # Cached (and data_uri_sha256): a plan asks each image for them once per clip and provider (a catalog of
    # 20,000 images x 5 prompts asks 100,000 times), and each is a pass over the bytes.
    @cached_property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def mime(self) -> str:
        return Image.MIME.get(self.format, f"image/{self.format.lower()}")

    def data_uri(self) -> str:
        """Built at each call, never kept: a plan of the whole catalog would otherwise hold every image twice."""
        return f"data:{self.mime};base64,{base64.b64encode(self.data).decode('ascii')}"

    @cached_property
    def data_uri_sha256(self) -> str:
        """``sent_sha256`` of the data URI."""
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
    return ImageData(ref=ref, data=data, format=fmt, width=width, height=height)
