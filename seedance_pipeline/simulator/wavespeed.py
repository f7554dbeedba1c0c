"""WaveSpeedAI ``bytedance/seedance-v1.5-pro/image-to-video`` (docs/providers.md §4).

Flat body; every answer wrapped in ``{"code","message","data"}``; poll
``/api/v3/predictions/{id}/result`` (also ``/api/v3/predictions/{id}``); ``enable_sync_mode``
blocks up to ``sync_mode_timeout_s`` and then answers 504 / code 5004 while the task runs on.
"""

from __future__ import annotations

import asyncio
import base64
import time
import uuid
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
    iso,
    json_object,
    origin,
    output_url,
    replace_images,
)
from seedance_pipeline.simulator.generate import FOLLOW_IMAGE, load_images, start_task
from seedance_pipeline.simulator.images import BYTEDANCE_FORMATS, WAVESPEED_MAX_BYTES, ImageProblem
from seedance_pipeline.simulator.state import Simulator
from seedance_pipeline.simulator.task import Task

NAME = "wavespeed"
SUBMIT_PATH = "/api/v3/bytedance/seedance-v1.5-pro/image-to-video"
MODEL = "bytedance/seedance-v1.5-pro/image-to-video"
RATIOS = ("21:9", "16:9", "4:3", "1:1", "3:4", "9:16")
RESOLUTIONS = ("720p", "480p")
SEED_MAX = 2147483647
SYNC_TIMEOUT_CODE = 5004
LIST_LIMIT = 100  # predictions per list answer (the real page size is [UNKNOWN])

STATUS = {
    "queued": "created",
    "running": "processing",
    "succeeded": "completed",
    "failed": "failed",
    "moderated": "failed",
    "expired": "failed",
    "cancelled": "failed",
}


def classify(method: str, path: str) -> str:
    if method == "POST" and path == SUBMIT_PATH:
        return "submit"
    if method == "GET" and path.startswith("/api/v3/predictions/"):
        return "status"
    if method == "GET" and path == "/api/v3/predictions":
        return "list"
    return "other"


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse({"code": status, "message": message}, status_code=status, headers=headers)


def _result_url(request: Request, task_id: str) -> str:
    return f"{origin(request)}/{NAME}/api/v3/predictions/{task_id}/result"


def prediction(request: Request, task: Task, *, at_submit: bool = False) -> dict[str, Any]:
    phase = task.phase()
    status = "created" if at_submit else STATUS[phase]
    outputs: list[str] = []
    nsfw: list[bool] = []
    error = ""
    inference_ms = 0
    if not at_submit and phase not in ("queued", "running"):
        inference_ms = max(0, int(round(((task.finished_mono() or task.done_mono) - task.start_mono) * 1000)))
        if phase == "succeeded":
            if task.meta.get("base64"):
                outputs = [base64.b64encode(task.video() or b"").decode()]
            else:
                outputs = [output_url(request, task)]
            nsfw = [False]
        elif phase == "moderated":
            code, message = outcomes.moderation(task)
            error = f"{message} ({code})"
        elif phase == "expired":
            error = outcomes.EXPIRE_MESSAGE
        else:
            error = outcomes.failure(task)[1]
    return {
        "id": task.id,
        "model": MODEL,
        "outputs": outputs,
        "urls": {"get": _result_url(request, task.id)},
        "has_nsfw_contents": nsfw,
        "status": status,
        "created_at": iso(task.created_wall),
        "error": error,
        "timings": {"inference": inference_ms},
    }


def _envelope(data: dict[str, Any], status_code: int = 200) -> Response:
    return JSONResponse({"code": 200, "message": "success", "data": data}, status_code=status_code)


def _validate(body: dict[str, Any]) -> dict[str, Any]:
    return {
        "prompt": v.required_str(body, "prompt"),
        "image": v.required_str(body, "image"),
        "last_image": v.optional_str(body, "last_image"),
        # No default is documented; absent follows the input image (the page's "adaptive" prose).
        "aspect_ratio": v.enum(body, "aspect_ratio", RATIOS, FOLLOW_IMAGE),
        "duration": v.integer(body, "duration", 4, 12, 5),
        "resolution": v.enum(body, "resolution", RESOLUTIONS, "720p"),
        "generate_audio": v.boolean(body, "generate_audio", True),
        "camera_fixed": v.boolean(body, "camera_fixed", False),
        "seed": v.integer(body, "seed", -1, SEED_MAX, -1),
        "enable_sync_mode": v.boolean(body, "enable_sync_mode", False),
        "enable_base64_output": v.boolean(body, "enable_base64_output", False),
    }


def routes(sim: Simulator) -> list[Route]:
    async def submit(request: Request) -> Response:
        if not authorized(sim, request):
            return error_response(401, "Unauthorized: invalid or missing API key")
        try:
            body = await json_object(request)
        except BadBody as exc:
            return error_response(400, str(exc))
        try:
            params = _validate(body)
        except v.BadField as exc:
            sim.record_submit(NAME, body, accepted=False)
            return error_response(400, str(exc))
        if params["enable_base64_output"] and request.query_params.get("webhook"):
            sim.record_submit(NAME, body, accepted=False)
            return JSONResponse(
                {"error": "webhook callback does not support base64 output, please disable enable_base64_output"},
                status_code=400,
            )
        try:
            images = await load_images(
                params["image"],
                params["last_image"],
                allow_data_uri=False,
                formats=BYTEDANCE_FORMATS,
                max_bytes=WAVESPEED_MAX_BYTES,
            )
        except ImageProblem as exc:
            sim.record_submit(NAME, body, accepted=False)
            return error_response(400, str(exc))
        task = start_task(
            sim,
            NAME,
            prompt=params["prompt"],
            images=images,
            ratio=params["aspect_ratio"],
            resolution=params["resolution"],
            duration_s=params["duration"],
            audio=params["generate_audio"],
            seed=params["seed"],
            seed_max=SEED_MAX,
            outcome=fault_outcome(request),
            task_id=uuid.uuid4().hex,
            meta={
                "base64": params["enable_base64_output"],
                "sync": params["enable_sync_mode"],
                "input": dict(body),  # as given: the predictions list shows it
            },
        )
        sim.record_submit(NAME, replace_images(body, images.shas()), accepted=True, task_id=task.id)
        if not params["enable_sync_mode"]:
            return _envelope(prediction(request, task, at_submit=True))
        deadline = time.monotonic() + sim.provider_config(NAME).sync_mode_timeout_s
        while not task.is_terminal() and time.monotonic() < deadline:
            await asyncio.sleep(min(0.02, max(0.0, deadline - time.monotonic())))
        if task.is_terminal():
            return _envelope(prediction(request, task))
        data = {
            "id": task.id,
            "status": "processing",
            "code": SYNC_TIMEOUT_CODE,
            "error": "Sync mode timed out",
            "urls": {"get": _result_url(request, task.id)},
        }
        return JSONResponse(
            {"code": SYNC_TIMEOUT_CODE, "message": "Sync mode timed out", "data": data}, status_code=504
        )

    async def result(request: Request) -> Response:
        if not authorized(sim, request):
            return error_response(401, "Unauthorized: invalid or missing API key")
        task = sim.get_task(NAME, request.path_params["task_id"])
        if task is None:
            return error_response(404, "prediction not found")
        return _envelope(prediction(request, task))

    async def predictions(request: Request) -> Response:
        """The account's recent predictions, newest first: id, model, status, created_at, input (§4.7). A task
        shows up ``list_delay_s`` after it was created; at most LIST_LIMIT are returned."""
        if not authorized(sim, request):
            return error_response(401, "Unauthorized: invalid or missing API key")
        delay = sim.provider_config(NAME).list_delay_s
        now = time.time()
        tasks = [t for t in sim.provider_tasks(NAME) if t.created_wall <= now - delay][:LIST_LIMIT]
        items = [
            {
                "id": t.id,
                "model": MODEL,
                "status": STATUS[t.phase()],
                "created_at": iso(t.created_wall),
                "input": t.meta.get("input", {}),
            }
            for t in tasks
        ]
        return _envelope({"items": items})

    return [
        Route("/api/v3/predictions", predictions, methods=["GET"]),
        Route(SUBMIT_PATH, submit, methods=["POST"]),
        Route("/api/v3/predictions/{task_id}/result", result, methods=["GET"]),
        Route("/api/v3/predictions/{task_id}", result, methods=["GET"]),
    ]
