"""Helpers every provider module uses: JSON bodies, absolute URLs, timestamps, output URLs."""

from __future__ import annotations

import datetime as dt
import json
import math
from typing import Any

from starlette.requests import Request

from seedance_pipeline.simulator.state import Simulator
from seedance_pipeline.simulator.task import Task


class BadBody(Exception):
    """The request body is not a JSON object."""


async def json_object(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw:
        raise BadBody("request body is empty; a JSON object is required")
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise BadBody("request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise BadBody("request body must be a JSON object")
    return body


def origin(request: Request) -> str:
    """scheme://host:port as the client addressed us (absolute URLs in responses use it)."""
    return f"{request.url.scheme}://{request.url.netloc}"


def output_url(request: Request, task: Task) -> str:
    """Where the task's MP4 is served; carries ?expires=<unix> when a URL TTL is configured."""
    url = f"{origin(request)}/{task.provider}/outputs/{task.id}.mp4"
    expires = task.output_expires_wall()
    if expires is not None:
        url += f"?expires={math.ceil(expires)}"
    return url


def iso(ts: float | None) -> str | None:
    """ISO 8601 UTC with milliseconds and a Z, e.g. 2025-01-15T12:00:00.000Z."""
    if ts is None:
        return None
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{int(ts * 1000) % 1000:03d}Z"


def replace_images(body: dict[str, Any], images: dict[str, str]) -> dict[str, Any]:
    """A copy of a (flat) body with each image field replaced by 'sha256:<hex>' of its bytes."""
    out = dict(body)
    for field_name, sha in images.items():
        if field_name in out:
            out[field_name] = f"sha256:{sha}"
    return out


def authorized(sim: Simulator, request: Request) -> bool:
    return sim.check_api_key(request.headers.get("authorization"))


def fault_outcome(request: Request) -> str | None:
    """A task-outcome fault (moderation / expire / fail) the middleware attached to this submit."""
    return request.scope.get(FAULT_OUTCOME_KEY)


FAULT_OUTCOME_KEY = "sim.fault_outcome"
