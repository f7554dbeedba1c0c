"""RunPod public endpoint ``seedance-v1-5-pro-i2v`` (docs/providers.md §3).

/run, /runsync[?wait=ms], /status/{id}, /cancel/{id} under /v2/seedance-v1-5-pro-i2v; body
``{"input": {...}}``; errors ``{"error": "..."}``; upstream failures embed Ark's JSON in the
error string (docs/providers.md §3.4); cost in USD in ``output.cost``.
"""

from __future__ import annotations

import asyncio
import json
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
    json_object,
    output_url,
    replace_images,
)
from seedance_pipeline.simulator.generate import load_images, start_task
from seedance_pipeline.simulator.images import BYTEDANCE_FORMATS, ImageProblem, is_http_url
from seedance_pipeline.simulator.state import Simulator
from seedance_pipeline.simulator.task import Task

NAME = "runpod"
ENDPOINT = "/v2/seedance-v1-5-pro-i2v"
RATIOS = ("21:9", "16:9", "9:16", "1:1", "4:3", "3:4")
RESOLUTIONS = ("480p", "720p")
USD_PER_S = {"480p": 0.024, "720p": 0.052}
SEED_MAX = 4294967295  # RunPod documents no range; Ark's [-1, 2^32-1] is used
RUN_RECORD_TTL_S, RUNSYNC_RECORD_TTL_S = 1800.0, 60.0
WAIT_MS_MIN, WAIT_MS_MAX = 1000, 300000

STATUS = {
    "queued": "IN_QUEUE",
    "running": "IN_PROGRESS",
    "succeeded": "COMPLETED",
    "failed": "FAILED",
    "moderated": "FAILED",
    "expired": "TIMED_OUT",
    "cancelled": "CANCELLED",
}


def classify(method: str, path: str) -> str:
    if path.startswith(ENDPOINT + "/"):
        op = path[len(ENDPOINT) + 1 :].split("/", 1)[0]
        if method == "POST" and op in ("run", "runsync"):
            return "submit"
        if method == "GET" and op == "status":
            return "status"
        if method == "POST" and op == "cancel":
            return "cancel"
    return "other"


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _upstream_error(status: int, message: str, prefix: str = "Error submitting task") -> str:
    """Public endpoints relay the upstream JSON inside the error string (docs/providers.md §3.4)."""
    return f"{prefix}: {status}, " + json.dumps({"code": status, "message": message}, separators=(",", ":"))


def _ms(seconds: float) -> int:
    return max(0, int(round(seconds * 1000)))


def job_object(request: Request, task: Task) -> dict[str, Any]:
    now = time.monotonic()
    phase = task.phase(now)
    job: dict[str, Any] = {"id": task.id, "status": STATUS[phase]}
    if phase in ("queued", "cancelled"):
        return job
    job["delayTime"] = _ms(task.start_mono - task.created_mono)
    if phase == "running":
        job["workerId"] = task.meta["worker_id"]
        return job
    job["executionTime"] = _ms((task.finished_mono() or now) - task.start_mono)
    if phase == "succeeded":
        cost = round(USD_PER_S[task.resolution] * task.duration_s, 6)
        job["output"] = {"video_url": output_url(request, task), "cost": cost}
    elif phase == "moderated":
        _code, message = outcomes.moderation(task)
        job["error"] = _upstream_error(400, message)
    elif phase == "failed":
        _code, message = outcomes.failure(task)
        job["error"] = _upstream_error(500, message, prefix="Error processing task")
    job["workerId"] = task.meta["worker_id"]
    return job


def _record_gone(task: Task) -> bool:
    finished = task.finished_mono()
    return finished is not None and time.monotonic() > finished + task.meta["record_ttl_s"]


def _validate(inp: dict[str, Any]) -> dict[str, Any]:
    prompt = v.required_str(inp, "prompt")
    image = v.required_str(inp, "image")
    last_image = v.optional_str(inp, "last_image")
    for name, ref in (("image", image), ("last_image", last_image)):
        if ref is not None and not is_http_url(ref):
            raise v.BadField(name, f"{name} must be an http(s) URL of the source image")
    return {
        "prompt": prompt,
        "image": image,
        "last_image": last_image,
        "duration": v.integer(inp, "duration", 4, 12, 5),
        "resolution": v.enum(inp, "resolution", RESOLUTIONS, "720p"),
        "aspect_ratio": v.enum(inp, "aspect_ratio", RATIOS, "16:9"),
        "camera_fixed": v.boolean(inp, "camera_fixed", False),
        "generate_audio": v.boolean(inp, "generate_audio", False),
        "seed": v.integer(inp, "seed", -1, SEED_MAX, -1),
    }


async def _submit(sim: Simulator, request: Request, sync: bool) -> tuple[Response | None, Task | None]:
    if not authorized(sim, request):
        return error_response(401, "Unauthorized: missing or invalid API key"), None
    try:
        body = await json_object(request)
    except BadBody as exc:
        return error_response(400, f"Invalid input: {exc}"), None
    try:
        inp = body.get("input")
        if not isinstance(inp, dict):
            raise BadBody("the request body must contain an 'input' object")
        params = _validate(inp)
    except (BadBody, v.BadField) as exc:
        sim.record_submit(NAME, body, accepted=False)
        return error_response(400, f"Invalid input: {exc}"), None
    try:
        images = await load_images(
            params["image"], params["last_image"], allow_data_uri=False, formats=BYTEDANCE_FORMATS
        )
    except ImageProblem as exc:
        sim.record_submit(NAME, body, accepted=False)
        return error_response(400, _upstream_error(400, str(exc))), None
    # Unknown top-level keys are discarded (docs/providers.md §3.2); the key covers what RunPod keeps.
    kept = {k: body[k] for k in ("input", "webhook", "policy") if k in body}
    kept["input"] = replace_images(inp, images.shas())
    cfg = sim.provider_config(NAME)
    record_ttl = (
        cfg.record_ttl_s if cfg.record_ttl_s is not None else (RUNSYNC_RECORD_TTL_S if sync else RUN_RECORD_TTL_S)
    )
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
        task_id=f"{'sync-' if sync else ''}{uuid.uuid4()}-u1",
        meta={"sync": sync, "record_ttl_s": record_ttl, "worker_id": uuid.uuid4().hex[:14]},
    )
    sim.record_submit(NAME, kept, accepted=True, task_id=task.id)
    return None, task


def routes(sim: Simulator) -> list[Route]:
    async def run(request: Request) -> Response:
        err, task = await _submit(sim, request, sync=False)
        if err is not None:
            return err
        assert task is not None
        return JSONResponse({"id": task.id, "status": "IN_QUEUE"})

    async def runsync(request: Request) -> Response:
        wait_s = sim.provider_config(NAME).runsync_default_wait_s
        if "wait" in request.query_params:
            try:
                wait_ms = int(request.query_params["wait"])
            except ValueError:
                return error_response(400, "Invalid wait: must be an integer number of milliseconds")
            wait_s = min(max(wait_ms, WAIT_MS_MIN), WAIT_MS_MAX) / 1000
        err, task = await _submit(sim, request, sync=True)
        if err is not None:
            return err
        assert task is not None
        deadline = time.monotonic() + wait_s
        while not task.is_terminal() and time.monotonic() < deadline:
            await asyncio.sleep(min(0.02, max(0.0, deadline - time.monotonic())))
        if task.is_terminal():
            return JSONResponse(job_object(request, task))
        return JSONResponse({"id": task.id, "status": STATUS[task.phase()]})

    async def status(request: Request) -> Response:
        if not authorized(sim, request):
            return error_response(401, "Unauthorized: missing or invalid API key")
        task = sim.get_task(NAME, request.path_params["job_id"])
        if task is None or _record_gone(task):
            return error_response(404, "request does not exist")
        return JSONResponse(job_object(request, task))

    async def cancel(request: Request) -> Response:
        if not authorized(sim, request):
            return error_response(401, "Unauthorized: missing or invalid API key")
        task = sim.get_task(NAME, request.path_params["job_id"])
        if task is None or _record_gone(task):
            return error_response(404, "request does not exist")
        sim.cancel_task(task)  # only a queued job is cancelled; otherwise its status is unchanged
        return JSONResponse({"id": task.id, "status": STATUS[task.phase()]})

    return [
        Route(f"{ENDPOINT}/run", run, methods=["POST"]),
        Route(f"{ENDPOINT}/runsync", runsync, methods=["POST"]),
        Route(f"{ENDPOINT}/status/{{job_id}}", status, methods=["GET"]),
        Route(f"{ENDPOINT}/cancel/{{job_id}}", cancel, methods=["POST"]),
    ]
