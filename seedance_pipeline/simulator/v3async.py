"""The "v3 async + task-result" platform that JieKou AI and Novita AI share (docs/providers.md §5).

``POST /v3/async/seedance-v1.5-pro-i2v`` (flat body, ``ratio`` incl. ``adaptive``, image URL or
data URI) -> ``{"task_id": ...}``; ``GET /v3/async/task-result?task_id=`` -> ``{extra, task,
images, videos, audios}``; errors ``{"code", "reason", "message", "metadata"}``. The per-provider
modules (jiekou.py, novita.py) only name themselves and pick the submit id field.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from seedance_pipeline.simulator import outcomes
from seedance_pipeline.simulator import validation as v
from seedance_pipeline.simulator.common import (
    BadBody,
    authorized,
    fault_outcome,
    json_object,
    output_url,
    replace_images,
)
from seedance_pipeline.simulator.generate import FOLLOW_IMAGE, load_images, start_task
from seedance_pipeline.simulator.images import BYTEDANCE_FORMATS, ImageProblem
from seedance_pipeline.simulator.state import Simulator
from seedance_pipeline.simulator.task import Task

SUBMIT_PATH = "/v3/async/seedance-v1.5-pro-i2v"
RESULT_PATH = "/v3/async/task-result"
RATIOS = ("16:9", "4:3", "1:1", "3:4", "9:16", "21:9", "adaptive")
RESOLUTIONS = ("480p", "720p", "1080p")
SERVICE_TIERS = ("default", "flex")
SEED_MAX = 4294967295
TASK_TYPE = "SEEDANCE_V1_5_PRO_I2V"  # [UNKNOWN] in the docs; our choice
DEFAULT_VIDEO_URL_TTL_S = 3600  # the value in the platform's task-result example (for images)

STATUS = {
    "queued": "TASK_STATUS_QUEUED",
    "running": "TASK_STATUS_PROCESSING",
    "succeeded": "TASK_STATUS_SUCCEED",
    "failed": "TASK_STATUS_FAILED",
    "moderated": "TASK_STATUS_FAILED",
    "expired": "TASK_STATUS_FAILED",
    "cancelled": "TASK_STATUS_FAILED",
}

# reason codes per HTTP status for answers the simulator makes up (faults, 404/405 routes)
REASONS = {
    400: "INVALID_REQUEST_BODY",
    401: "FAILED_TO_AUTH",
    402: "NOT_ENOUGH_BALANCE",
    403: "ACCESS_DENY",
    404: "API_NOT_FOUND",
    405: "API_NOT_FOUND",
    429: "RATE_LIMIT_EXCEEDED",
    500: "CREATE_TASK_FAILED",
    503: "SERVICE_NOT_AVAILABLE",
}
IMAGE_REASONS = {
    "format": "INVALID_IMAGE_FORMAT",
    "too_large": "IMAGE_FILE_EXCEEDS_MAX_SIZE",
    "too_big": "IMAGE_EXCEEDS_MAX_RESOLUTION",
    "too_small": "INVALID_IMAGE_SIZE",
    "aspect": "INVALID_IMAGE_SIZE",
}


def classify(method: str, path: str) -> str:
    if method == "POST" and path == SUBMIT_PATH:
        return "submit"
    if method == "GET" and path == RESULT_PATH:
        return "status"
    return "other"


def error_response(
    status: int, message: str, headers: dict[str, str] | None = None, reason: str | None = None
) -> Response:
    body = {
        "code": status,
        "reason": reason or REASONS.get(status, "INTERNAL_ERROR"),
        "message": message,
        "metadata": {},
    }
    return JSONResponse(body, status_code=status, headers=headers)


def _ms(ts: float | None) -> str:
    return "0" if ts is None else str(int(ts * 1000))


def task_result(request: Request, task: Task) -> dict[str, Any]:
    now = time.monotonic()
    phase = task.phase(now)
    reason = ""
    videos: list[dict[str, Any]] = []
    if phase == "succeeded":
        ttl = task.output_url_ttl_s if task.output_url_ttl_s is not None else DEFAULT_VIDEO_URL_TTL_S
        videos = [{"video_url": output_url(request, task), "video_url_ttl": str(math.ceil(ttl)), "video_type": "mp4"}]
    elif phase == "moderated":
        code, message = outcomes.moderation(task)
        reason = f"{message} ({code})"
    elif phase == "expired":
        reason = f"task expired: {outcomes.EXPIRE_MESSAGE}"
    elif phase == "cancelled":
        reason = "task cancelled"
    elif phase == "failed":
        reason = outcomes.failure(task)[1]
    started = now >= task.start_mono and phase != "cancelled"
    progress = 100 if phase == "succeeded" else (0 if phase != "running" else min(99, int(task.progress(now) * 100)))
    return {
        "extra": {
            "seed": str(task.seed),
            "enable_nsfw_detection": False,
            "debug_info": {
                "request_info": "",
                "submit_time_ms": _ms(task.created_wall),
                "execute_time_ms": _ms(task.wall(task.start_mono) if started else None),
                "complete_time_ms": _ms(task.finished_wall()),
            },
        },
        "task": {
            "task_id": task.id,
            "status": STATUS[phase],
            "reason": reason,
            "task_type": TASK_TYPE,
            "eta": math.ceil(task.eta_s(now)) if phase in ("queued", "running") else 0,
            "progress_percent": progress,
        },
        "images": [],
        "videos": videos,
        "audios": [],
    }


def _validate(body: dict[str, Any]) -> dict[str, Any]:
    fps = body.get("fps")
    if fps is not None and (isinstance(fps, bool) or fps != 24):
        raise v.BadField("fps", f"fps must be 24, the only supported frame rate (got {fps!r})")
    return {
        "prompt": v.required_str(body, "prompt"),
        "image": v.required_str(body, "image"),
        "last_image": v.optional_str(body, "last_image"),
        "ratio": v.enum(body, "ratio", RATIOS, "adaptive"),
        "duration": v.integer(body, "duration", 4, 12, 5),
        "resolution": v.enum(body, "resolution", RESOLUTIONS, "720p"),
        "seed": v.integer(body, "seed", -1, SEED_MAX, -1),
        "watermark": v.boolean(body, "watermark", False),
        "camera_fixed": v.boolean(body, "camera_fixed", False),
        "generate_audio": v.boolean(body, "generate_audio", True),
        "service_tier": v.enum(body, "service_tier", SERVICE_TIERS, "default"),
        "execution_expires_after": v.integer(body, "execution_expires_after", 3600, 259200, 172800),
    }


def routes(sim: Simulator, name: str, submit_id_field: Callable[[], str]) -> list[Route]:
    async def submit(request: Request) -> Response:
        if not authorized(sim, request):
            return error_response(401, "invalid token")
        try:
            body = await json_object(request)
        except BadBody as exc:
            return error_response(400, str(exc))
        try:
            params = _validate(body)
        except v.BadField as exc:
            sim.record_submit(name, body, accepted=False)
            return error_response(400, str(exc))
        if params["resolution"] in sim.provider_config(name).refused_resolutions:
            sim.record_submit(name, body, accepted=False)
            allowed = ", ".join(r for r in RESOLUTIONS if r not in sim.provider_config(name).refused_resolutions)
            return error_response(400, f"resolution {params['resolution']} is not supported yet; use one of {allowed}")
        try:
            images = await load_images(
                params["image"], params["last_image"], allow_data_uri=True, formats=BYTEDANCE_FORMATS
            )
        except ImageProblem as exc:
            sim.record_submit(name, body, accepted=False)
            return error_response(400, str(exc), reason=IMAGE_REASONS.get(exc.kind, "INVALID_REQUEST_BODY"))
        ratio = FOLLOW_IMAGE if params["ratio"] == "adaptive" else params["ratio"]
        task = start_task(
            sim,
            name,
            prompt=params["prompt"],
            images=images,
            ratio=ratio,
            resolution=params["resolution"],
            duration_s=params["duration"],
            audio=params["generate_audio"],
            seed=params["seed"],
            seed_max=SEED_MAX,
            outcome=fault_outcome(request),
            task_id=str(uuid.uuid4()),
            meta={"service_tier": params["service_tier"]},
        )
        sim.record_submit(name, replace_images(body, images.shas()), accepted=True, task_id=task.id)
        return JSONResponse({submit_id_field(): task.id})

    async def result(request: Request) -> Response:
        if not authorized(sim, request):
            return error_response(401, "invalid token")
        task_id = request.query_params.get("task_id")
        if not task_id:
            return error_response(400, "task_id is required")
        task = sim.get_task(name, task_id)
        if task is None:
            return error_response(404, f"task {task_id} not found", reason="TASK_NOT_FOUND")
        return JSONResponse(task_result(request, task))

    return [Route(SUBMIT_PATH, submit, methods=["POST"]), Route(RESULT_PATH, result, methods=["GET"])]


def fault_response(status: int, endpoint: str, message: str, headers: dict[str, str] | None = None) -> Response:
    """An injected error: like error_response, with the platform's reason for that endpoint."""
    reason = "GET_RESULT_FAILED" if (status == 500 and endpoint == "status") else None
    return error_response(status, message, headers, reason=reason)
