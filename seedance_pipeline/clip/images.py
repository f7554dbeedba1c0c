"""Reading input images from any reference (local path, fsspec URL, http(s) URL), refusing oversized ones
before reading them."""

from __future__ import annotations

import fsspec
import httpx

from seedance_pipeline.core.errors import InvalidRequest
from seedance_pipeline.core.images import MAX_IMAGE_BYTES, ImageData, inspect_image, is_http_url


def read_image_bytes(ref: str, field: str = "image", *, http: httpx.Client | None = None) -> bytes:
    """The bytes behind a reference, refusing anything at or over the size limit without reading it."""
    if is_http_url(ref):
        client = http or httpx.Client(timeout=httpx.Timeout(30.0, connect=10.0))
        try:
            with client.stream("GET", ref) as resp:
                if resp.status_code != 200:
                    raise InvalidRequest(
                        field, ref, f"the image URL answered HTTP {resp.status_code}; it must be reachable"
                    )
                chunks, total = [], 0
                for chunk in resp.iter_bytes():
                    total += len(chunk)
                    if total >= MAX_IMAGE_BYTES:
                        raise InvalidRequest(field, ref, "image files must be smaller than 30 MB")
                    chunks.append(chunk)
                return b"".join(chunks)
        except httpx.HTTPError as exc:
            raise InvalidRequest(field, ref, f"the image URL could not be fetched ({type(exc).__name__})") from None
        finally:
            if http is None:
                client.close()
    try:
        fs, path = fsspec.core.url_to_fs(ref)
        size = fs.size(path)
    except FileNotFoundError:
        raise InvalidRequest(field, ref, "no such file") from None
    if size is not None and size >= MAX_IMAGE_BYTES:
        raise InvalidRequest(field, ref, f"image files must be smaller than 30 MB (this one is {size / 2**20:.1f} MB)")
    with fs.open(path, "rb") as fh:
        return fh.read()


def load_image(ref: str, field: str = "image", *, http: httpx.Client | None = None) -> ImageData:
    return inspect_image(ref, read_image_bytes(ref, field, http=http), field)
