"""The output "CDN": ``GET /<provider>/outputs/<task_id>.mp4[?expires=<unix>]``, no auth.

Storage-style XML errors (403 once the configured URL TTL has passed, 404 for unknown or
unfinished tasks), as object stores behind these providers answer.
"""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from seedance_pipeline.simulator.state import Simulator

PATH = "/outputs/{task_id}.mp4"


def is_download(method: str, path: str) -> bool:
    return method in ("GET", "HEAD") and path.startswith("/outputs/")


def storage_error(status: int, code: str, message: str) -> Response:
    body = f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{message}</Message></Error>\n'
    return Response(body, status_code=status, media_type="application/xml")


def expired_response() -> Response:
    return storage_error(403, "AccessDenied", "Request has expired")


_PIECE = 1024 * 1024


async def _padded(video: bytes, size: int):
    """The MP4, then zeros up to ``size`` bytes, in 1 MiB pieces (config ``output_size_bytes``)."""
    yield video
    left, zeros = size - len(video), bytes(_PIECE)
    while left > 0:
        piece = zeros if left >= _PIECE else zeros[:left]
        left -= len(piece)
        yield piece


def route(sim: Simulator, provider: str) -> Route:
    async def download(request: Request) -> Response:
        task = sim.get_task(provider, request.path_params["task_id"], forgotten=True)
        video = task.video() if task is not None else None
        if task is None or video is None:
            return storage_error(404, "NoSuchKey", "The specified key does not exist.")
        expires = task.output_expires_wall()
        if expires is not None and time.time() > expires:
            return expired_response()
        size = sim.provider_config(provider).output_size_bytes
        if size is not None and size > len(video):
            return StreamingResponse(
                _padded(video, size),
                media_type="video/mp4",
                headers={"Accept-Ranges": "none", "Content-Length": str(size)},
            )
        return Response(video, media_type="video/mp4", headers={"Accept-Ranges": "none"})

    return Route(PATH, download, methods=["GET"])
