"""VibeDream ``seedance-1.5-pro-i2v`` (docs/providers.md §6).

``POST /api/v1/models/seedance-1.5-pro-i2v/generate`` -> ``{id, status:"processing", statusUrl,
estimatedTime, costCents, createdAt}``; ``GET /api/v1/predictions/{id}`` -> ``{id, modelId,
modelName, status, outputs, error, createdAt, completedAt}``. Errors ``{"error": "..."}``
(VibeDream documents none; our choice). Its docs list no defaults: absent duration -> 5,
resolution -> 720p, aspect_ratio -> auto, generate_audio -> false, seed -> -1.
"""

from __future__ import annotations

import math
import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

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
from seedance_pipeline.simulator.images import VIBEDREAM_FORMATS, ImageProblem, is_http_url
from seedance_pipeline.simulator.state import Simulator
from seedance_pipeline.simulator.task import Task

NAME = "vibedream"
MODEL_ID = "seedance-1.5-pro-i2v"
MODEL_NAME = "Seedance 1.5 Pro Image to Video"
SUBMIT_PATH = f"/api/v1/models/{MODEL_ID}/generate"
RATIOS = ("16:9", "9:16", "1:1", "4:3", "3:4", "21:9", "auto")
RESOLUTIONS = ("480p", "720p", "1080p")
SEED_MAX = 1000  # "-1 – 1000 (step 1)" as documented (sic)
MODERATION_ERROR = "Your request was flagged by content moderation. Please modify your prompt."
FAIL_ERROR = "Generation failed. Please try again."  # [UNKNOWN] text; our choice
EXPIRE_ERROR = "Generation timed out and the prediction expired."  # [UNKNOWN] text; our choice

STATUS = {
    "queued": "processing",
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
    if method == "GET" and path.startswith("/api/v1/predictions/"):
        return "status"
    return "other"


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def cost_cents(width: int, height: int, duration_s: int, audio: bool) -> int:
    """ASSUMPTION: the docs give only costCents 29 for 4 s / 480p (16:9, 864x496) / silent.

    We scale 29 by pixels x seconds relative to that request and double it with audio (ByteDance's
    own audio/silent price ratio, docs/providers.md §7.8), rounded half up to whole cents.
    """
    cents = 29 * (width * height * duration_s) / (864 * 496 * 4) * (2 if audio else 1)
    return int(math.floor(cents + 0.5))


def prediction(request: Request, task: Task) -> dict[str, Any]:
    phase = task.phase()
    outputs = None
    error = None
    if phase == "succeeded":
        outputs = [output_url(request, task)]
    elif phase == "moderated":
        error = MODERATION_ERROR
    elif phase == "expired":
        error = EXPIRE_ERROR
    elif phase in ("failed", "cancelled"):
        error = FAIL_ERROR if task.render_error() is None else f"{FAIL_ERROR} ({task.render_error()})"
    return {
        "id": task.id,
        "modelId": MODEL_ID,
        "modelName": MODEL_NAME,
        "status": STATUS[phase],
        "outputs": outputs,
        "error": error,
        "createdAt": iso(task.created_wall),
        "completedAt": iso(task.finished_wall()),
    }


def _validate(body: dict[str, Any]) -> dict[str, Any]:
    image = v.required_str(body, "image")
    last_image = v.optional_str(body, "last_image")
    for name, ref in (("image", image), ("last_image", last_image)):
        if ref is not None and not is_http_url(ref):
            raise v.BadField(name, f"{name} must be a public image URL (http or https)")
    return {
        "prompt": v.required_str(body, "prompt"),
        "image": image,
        "last_image": last_image,
        "duration": v.integer(body, "duration", 4, 12, 5, allow_integral_float=True),
        "resolution": v.enum(body, "resolution", RESOLUTIONS, "720p"),
        "aspect_ratio": v.enum(body, "aspect_ratio", RATIOS, "auto"),
        "camera_fixed": v.boolean(body, "camera_fixed", False),
        "seed": v.integer(body, "seed", -1, SEED_MAX, -1, allow_integral_float=True),
        "generate_audio": v.boolean(body, "generate_audio", False),
    }


def routes(sim: Simulator) -> list[Route]:
    async def generate(request: Request) -> Response:
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
        try:
            images = await load_images(
                params["image"], params["last_image"], allow_data_uri=False, formats=VIBEDREAM_FORMATS
            )
        except ImageProblem as exc:
            sim.record_submit(NAME, body, accepted=False)
            return error_response(400, str(exc))
        task = start_task(
            sim,
            NAME,
            prompt=params["prompt"],
            images=images,
            ratio=FOLLOW_IMAGE if params["aspect_ratio"] == "auto" else params["aspect_ratio"],
            resolution=params["resolution"],
            duration_s=params["duration"],
            audio=params["generate_audio"],
            seed=params["seed"],
            seed_max=SEED_MAX,
            outcome=fault_outcome(request),
            task_id=str(uuid.uuid4()),
        )
        sim.record_submit(NAME, replace_images(body, images.shas()), accepted=True, task_id=task.id)
        cfg = sim.provider_config(NAME)
        lo, hi = cfg.latency_min_s + cfg.queue_delay_s, cfg.latency_max_s + cfg.queue_delay_s
        return JSONResponse(
            {
                "id": task.id,
                "status": "processing",
                "statusUrl": f"{origin(request)}/{NAME}/api/v1/predictions/{task.id}",
                "estimatedTime": f"{int(lo)}-{math.ceil(hi)}s",
                "costCents": cost_cents(task.width, task.height, task.duration_s, task.audio),
                "createdAt": iso(task.created_wall),
            }
        )

    async def get_prediction(request: Request) -> Response:
        if not authorized(sim, request):
            return error_response(401, "Unauthorized: invalid or missing API key")
        task = sim.get_task(NAME, request.path_params["prediction_id"])
        if task is None:
            return error_response(404, "Prediction not found")
        return JSONResponse(prediction(request, task))

    return [
        Route(SUBMIT_PATH, generate, methods=["POST"]),
        Route("/api/v1/predictions/{prediction_id}", get_prediction, methods=["GET"]),
    ]
