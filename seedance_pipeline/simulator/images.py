"""Fetch (or decode) and check an input image the way the providers do.

Limits (docs/providers.md §2.5, the ByteDance text copied by JieKou/Novita): formats
jpeg/png/webp/bmp/tiff/gif (VibeDream: JPEG, PNG, GIF, WebP), sides in the open range (300, 6000) px,
aspect (width/height) in (0.4, 2.5), size < 30 MB (WaveSpeed: at most 20 MB). A problem is an
``ImageProblem`` whose ``kind`` lets each provider pick its own error code.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx
from pillow_heif import register_heif_opener

BYTEDANCE_FORMATS = frozenset({"jpeg", "png", "webp", "bmp", "tiff", "gif"})
# ModelArk takes HEIC/HEIF too (docs/providers.md §2.5); Pillow reads them through pillow-heif's plugin.
ARK_FORMATS = BYTEDANCE_FORMATS | {"heif"}
VIBEDREAM_FORMATS = frozenset({"jpeg", "png", "gif", "webp"})
MIN_SIDE, MAX_SIDE = 300, 6000
MIN_ASPECT, MAX_ASPECT = 0.4, 2.5
MAX_BYTES = 30 * 1024 * 1024  # "< 30 MB": 30 MiB and more is rejected
WAVESPEED_MAX_BYTES = 20 * 1024 * 1024  # WaveSpeed's upload cap: more than 20 MiB is rejected
# How long the simulator waits for an image URL. Most are its own assets (put_asset), served by the process's
# own event loop: with 20 submits at once on a loaded 2-core machine that loop took more than 5 s to accept the
# connection (ConnectTimeout, benchmark 2 in test_bench_quick), so the bound is generous.
FETCH_TIMEOUT_S = 30.0

# Pillow format name -> the providers' vocabulary (MPO is a multi-picture JPEG).
_PIL_FORMATS = {
    "JPEG": "jpeg",
    "MPO": "jpeg",
    "PNG": "png",
    "WEBP": "webp",
    "BMP": "bmp",
    "TIFF": "tiff",
    "GIF": "gif",
    "HEIF": "heif",
}
register_heif_opener()
_DATA_URI = re.compile(r"^data:image/([A-Za-z0-9.+-]+);base64,(.*)$", re.S)


class ImageProblem(Exception):
    """kind: not_url | data_uri | unreachable | too_large | format | too_small | too_big | aspect."""

    def __init__(self, kind: str, message: str):
        self.kind = kind
        super().__init__(message)


@dataclass(frozen=True)
class LoadedImage:
    data: bytes
    width: int
    height: int
    format: str  # providers' vocabulary: jpeg, png, ...

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


def is_http_url(ref: str) -> bool:
    parts = urlsplit(ref)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


async def load_image(
    ref: object, field: str, *, allow_data_uri: bool, formats: frozenset[str], max_bytes: int = MAX_BYTES - 1
) -> LoadedImage:
    if not isinstance(ref, str) or not ref.strip():
        raise ImageProblem("not_url", f"{field} must be a non-empty string")
    if ref.startswith("data:"):
        if not allow_data_uri:
            raise ImageProblem("data_uri", f"{field} must be an http(s) URL; data URIs are not accepted")
        data = _decode_data_uri(ref, field)
    elif is_http_url(ref):
        data = await _fetch(ref, field)
    else:
        accepted = "an http(s) URL or a data:image/<format>;base64 URI" if allow_data_uri else "an http(s) URL"
        raise ImageProblem("not_url", f"{field} must be {accepted}")
    return check_image(data, field, formats, max_bytes)


def check_image(data: bytes, field: str, formats: frozenset[str], max_bytes: int = MAX_BYTES - 1) -> LoadedImage:
    """``max_bytes``: the largest size accepted."""
    if len(data) > max_bytes:
        raise ImageProblem("too_large", f"{field} is {len(data)} bytes; at most {max_bytes} are accepted")
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as im:
            fmt = _PIL_FORMATS.get(im.format or "", (im.format or "unknown").lower())
            width, height = im.size
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        raise ImageProblem("format", f"{field} is not a decodable image; supported formats: {_list(formats)}") from None
    if fmt not in formats:
        raise ImageProblem("format", f"{field} format {fmt} is not supported; supported formats: {_list(formats)}")
    if min(width, height) <= MIN_SIDE:
        raise ImageProblem("too_small", f"{field} is {width}x{height}; each side must be more than {MIN_SIDE} px")
    if max(width, height) >= MAX_SIDE:
        raise ImageProblem("too_big", f"{field} is {width}x{height}; each side must be less than {MAX_SIDE} px")
    aspect = width / height
    if not MIN_ASPECT < aspect < MAX_ASPECT:
        raise ImageProblem(
            "aspect", f"{field} aspect ratio {aspect:.3f} ({width}x{height}) is outside {MIN_ASPECT}..{MAX_ASPECT}"
        )
    return LoadedImage(data, width, height, fmt)


def _list(formats: frozenset[str]) -> str:
    return ", ".join(sorted(formats))


def _decode_data_uri(ref: str, field: str) -> bytes:
    m = _DATA_URI.match(ref)
    if not m:
        raise ImageProblem("data_uri", f"{field} data URI must look like data:image/<format>;base64,<data>")
    if len(m.group(2)) * 3 // 4 >= MAX_BYTES:
        raise ImageProblem("too_large", f"{field} is larger than 30 MB")
    try:
        return base64.b64decode(m.group(2), validate=False)
    except (binascii.Error, ValueError):
        raise ImageProblem("data_uri", f"{field} data URI is not valid base64") from None


def _is_loopback(url: str) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    return host in ("localhost", "::1") or host.startswith("127.")


async def _fetch(url: str, field: str) -> bytes:
    # Loopback URLs (tests, local runs) never go through an environment proxy.
    try:
        async with (
            httpx.AsyncClient(
                timeout=FETCH_TIMEOUT_S, follow_redirects=True, trust_env=not _is_loopback(url)
            ) as client,
            client.stream("GET", url) as resp,
        ):
            if resp.status_code != 200:
                raise ImageProblem("unreachable", f"{field} URL could not be fetched: HTTP {resp.status_code}")
            chunks, total = [], 0
            async for chunk in resp.aiter_bytes():
                chunks.append(chunk)
                total += len(chunk)
                if total >= MAX_BYTES:
                    raise ImageProblem("too_large", f"{field} is larger than 30 MB")
            return b"".join(chunks)
    except httpx.HTTPError as exc:
        raise ImageProblem("unreachable", f"{field} URL could not be fetched: {type(exc).__name__}") from None
