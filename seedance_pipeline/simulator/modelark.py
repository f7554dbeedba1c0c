"""BytePlus ModelArk / Volcengine Ark, ByteDance's own Seedance 1.5 Pro API (docs/providers.md §7).

``POST /contents/generations/tasks`` (``model``, ``content[]`` of a text item and image items with roles) ->
``{"id": "cgt-…"}``; ``GET /contents/generations/tasks/{id}`` -> the task object (six states, ``content.video_url``,
``content.last_frame_url`` when ``return_last_frame``, ``usage.completion_tokens``); ``GET
/contents/generations/tasks?page_num&page_size&filter.*`` -> ``{"items", "total"}`` of the last 7 days;
``DELETE /contents/generations/tasks/{id}`` cancels a queued task, deletes a finished one's record, and refuses a
running or cancelled one. Errors ``{"error": {"code", "message", "param", "type"}}``. At most 120 queued tasks.
Output and last-frame URLs live 24 h.
"""

from __future__ import annotations

import io
import math
import time
import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from seedance_pipeline.simulator import outcomes
from seedance_pipeline.simulator import validation as v
from seedance_pipeline.simulator.common import BadBody, authorized, fault_outcome, json_object, origin, output_url
from seedance_pipeline.simulator.generate import FOLLOW_IMAGE, Images, start_task
from seedance_pipeline.simulator.images import ARK_FORMATS, ImageProblem, load_image
from seedance_pipeline.simulator.outputs import expired_response, storage_error
from seedance_pipeline.simulator.state import Simulator
from seedance_pipeline.simulator.task import Task

NAME = "modelark"
TASKS_PATH = "/contents/generations/tasks"
MODELS = ("seedance-1-5-pro-251215", "doubao-seedance-1-5-pro-251215")  # or an endpoint id "ep-…"
RATIOS = ("16:9", "4:3", "1:1", "3:4", "9:16", "21:9", "adaptive")
RESOLUTIONS = ("480p", "720p", "1080p")
SERVICE_TIERS = ("default", "flex")
SEED_MAX = 4294967295
MAX_QUEUED = 120  # per account (docs/providers.md §7.5)
LIST_WINDOW_S = 7 * 86400.0  # the list shows the last 7 days (§7.7)
URL_TTL_S = 24 * 3600.0  # video and last-frame URLs (§7.6)
PAGE_SIZE_MAX = 500

STATUS = {
    "queued": "queued",
    "running": "running",
    "succeeded": "succeeded",
    "failed": "failed",
    "moderated": "failed",
    "expired": "expired",
    "cancelled": "cancelled",
}
# Codes for answers the simulator makes up (faults, unknown routes); Ark's own where §7.4 lists one.
CODES = {
    400: ("InvalidParameter", "BadRequest"),
    401: ("AuthenticationError", "Unauthorized"),
    403: ("AccessDenied", "Forbidden"),
    404: ("ResourceNotFound", "NotFound"),  # our invention: §7.4 names only endpoint/model 404 codes
    405: ("ResourceNotFound", "NotFound"),
    429: ("RateLimitExceeded.EndpointRPMExceeded", "TooManyRequests"),
    500: ("InternalServiceError", "InternalServerError"),
    503: ("ServiceUnavailable", "ServiceUnavailable"),
}
QUEUE_FULL_CODE = "QuotaExceeded.QueuedTasks"  # our invention: the cap is documented, its error code is not


def classify(method: str, path: str) -> str:
    if path == TASKS_PATH:
        return {"POST": "submit", "GET": "list"}.get(method, "other")
    if path.startswith(TASKS_PATH + "/") and "/" not in path[len(TASKS_PATH) + 1 :]:
        return {"GET": "status", "DELETE": "cancel"}.get(method, "other")
    if method == "GET" and path.startswith("/last_frames/"):
        return "download"
    return "other"


def error_response(
    status: int, message: str, headers: dict[str, str] | None = None, code: str | None = None, param: str = ""
) -> Response:
    default_code, kind = CODES.get(status, ("InternalServiceError", "InternalServerError"))
    request_id = uuid.uuid4().hex[:24]
    body = {"error": {"code": code or default_code, "message": f"{message} Request id: {request_id}", "param": param}}
    body["error"]["type"] = kind
    return JSONResponse(body, status_code=status, headers=headers)


def tokens(width: int, height: int, duration_s: int) -> int:
    """``usage.completion_tokens`` as observed (docs/providers.md §2.4): 24·d + 1 frames, height padded to 16."""
    padded = math.ceil(height / 16) * 16
    return width * padded * (24 * duration_s + 1) // 1024


def _deleted(task: Task) -> bool:
    return bool(task.meta.get("deleted"))


def task_object(request: Request, task: Task) -> dict[str, Any]:
    phase = task.phase()
    content: dict[str, Any] = {}
    error = None
    usage = None
    if phase == "succeeded":
        content["video_url"] = output_url(request, task)
        if task.meta.get("return_last_frame"):
            content["last_frame_url"] = f"{origin(request)}/{NAME}/last_frames/{task.id}.png" + _expires(task)
        n = tokens(task.width, task.height, task.duration_s)
        usage = {"completion_tokens": n, "total_tokens": n}
    elif phase == "moderated":
        code, message = outcomes.moderation(task)
        error = {"code": code, "message": message}
    elif phase == "expired":
        error = {"code": "TaskExpired", "message": outcomes.EXPIRE_MESSAGE}  # the code is our invention
    elif phase == "failed":
        code, message = outcomes.failure(task)
        error = {"code": code, "message": message}
    finished = task.finished_wall()
    return {
        "id": task.id,
        "model": task.meta["model"],
        "status": STATUS[phase],
        "content": content or None,
        "usage": usage,
        "error": error,
        "created_at": int(task.created_wall),
        "updated_at": int(finished if finished is not None else task.created_wall),
        "seed": task.seed,
        "resolution": task.resolution,
        "ratio": task.ratio,
        "duration": task.duration_s,
        "framespersecond": 24,
        "generate_audio": task.audio,
        "service_tier": task.meta["service_tier"],
        "execution_expires_after": task.meta["execution_expires_after"],
        "draft": False,
        "priority": 0,
        "output_format": "mp4",
    }


def _expires(task: Task) -> str:
    expires = task.output_expires_wall()
    return "" if expires is None else f"?expires={math.ceil(expires)}"


def _content(body: dict[str, Any]) -> tuple[str, str, str | None]:
    """(prompt, first frame, last frame) from ``content[]``, with Ark's rules on roles."""
    items = body.get("content")
    if not isinstance(items, list) or not items:
        raise v.BadField("content", "content is required and must be a non-empty array", "MissingParameter")
    texts = [i.get("text") for i in items if isinstance(i, dict) and i.get("type") == "text"]
    images = [i for i in items if isinstance(i, dict) and i.get("type") == "image_url"]
    if len(texts) != 1 or not isinstance(texts[0], str) or not texts[0].strip():
        raise v.BadField("content", "content must hold exactly one non-empty text item")
    if not images:
        raise v.BadField("content", "image-to-video needs an image_url item (role first_frame)")
    roles = [i.get("role") for i in images]
    if len(images) > 1 and (roles[0] != "first_frame" or None in roles):
        raise v.BadField("content", "role must be specified for image contents")  # Ark's text (§7.2)
    if len(images) > 2 or roles[0] not in (None, "first_frame") or roles[1:] not in ([], ["last_frame"]):
        raise v.BadField("content", "image roles must be first_frame, then last_frame")
    urls = [nested_url(i) for i in images]
    return texts[0], urls[0], urls[1] if len(urls) > 1 else None


def nested_url(item: dict[str, Any]) -> str:
    image_url = item.get("image_url")
    url = image_url.get("url") if isinstance(image_url, dict) else None
    if not isinstance(url, str) or not url.strip():
        raise v.BadField("content", "image_url.url must be a non-empty string")
    return url


def _validate(body: dict[str, Any]) -> dict[str, Any]:
    model = v.required_str(body, "model")
    if model not in MODELS and not model.startswith("ep-"):
        raise v.BadField("model", f"The model or endpoint {model} does not exist or you do not have access to it.")
    prompt, image, last_image = _content(body)
    duration = v.integer(body, "duration", -1, 12, 5)
    if 0 <= duration < 4:
        raise v.BadField("duration", f"duration must be -1 or between 4 and 12 (got {duration})")
    return {
        "model": model,
        "prompt": prompt,
        "image": image,
        "last_image": last_image,
        "ratio": v.enum(body, "ratio", RATIOS, "adaptive"),
        "duration": 5 if duration == -1 else duration,  # -1: the model chooses; the simulator chooses 5
        "resolution": v.enum(body, "resolution", RESOLUTIONS, "720p"),
        "seed": v.integer(body, "seed", -1, SEED_MAX, -1),
        "camera_fixed": v.boolean(body, "camera_fixed", False),
        "watermark": v.boolean(body, "watermark", False),
        "generate_audio": v.boolean(body, "generate_audio", True),
        "return_last_frame": v.boolean(body, "return_last_frame", False),
        "service_tier": v.enum(body, "service_tier", SERVICE_TIERS, "default"),
        "execution_expires_after": v.integer(body, "execution_expires_after", 3600, 259200, 172800),
    }


def _recorded(body: dict[str, Any], images: Images) -> dict[str, Any]:
    """The body as recorded: each image URL replaced by 'sha256:<hex>' of its bytes."""
    shas = [images.image.sha256] + ([images.last_image.sha256] if images.last_image else [])
    content = []
    for item in body["content"]:
        if isinstance(item, dict) and item.get("type") == "image_url" and shas:
            item = {**item, "image_url": {"url": f"sha256:{shas.pop(0)}"}}
        content.append(item)
    return {**body, "content": content}


def _last_frame_png(task: Task) -> bytes:
    """The simulator's last frame: the last image given (else the first frame) at the clip's size, as PNG."""
    from PIL import Image

    with Image.open(io.BytesIO(task.meta["last_frame_source"])) as im:
        frame = im.convert("RGB").resize((task.width, task.height))
    buf = io.BytesIO()
    frame.save(buf, format="PNG")
    return buf.getvalue()


def routes(sim: Simulator) -> list[Route]:
    def bad_key() -> Response:
        return error_response(401, "The API key in the request is missing or invalid.")

    def find(request: Request) -> Task | None:
        task = sim.get_task(NAME, request.path_params["task_id"])
        return None if task is None or _deleted(task) else task

    def not_found(task_id: str) -> Response:
        return error_response(404, f"The specified task {task_id} is not found.")

    async def create(request: Request) -> Response:
        if not authorized(sim, request):
            return bad_key()
        try:
            body = await json_object(request)
        except BadBody as exc:
            return error_response(400, str(exc))
        try:
            params = _validate(body)
        except v.BadField as exc:
            sim.record_submit(NAME, body, accepted=False)
            return error_response(400, str(exc), code=exc.code, param=exc.field)
        if params["resolution"] in sim.provider_config(NAME).refused_resolutions:
            sim.record_submit(NAME, body, accepted=False)
            return error_response(400, f"resolution {params['resolution']} is not supported", param="resolution")
        queued = sum(1 for t in sim.provider_tasks(NAME) if t.phase() == "queued")
        if queued >= MAX_QUEUED:
            message = f"The maximum number of queued tasks for a single master account is {MAX_QUEUED}."
            return error_response(429, message, code=QUEUE_FULL_CODE)
        try:
            first = await load_image(params["image"], "image", allow_data_uri=True, formats=ARK_FORMATS)
            last = None
            if params["last_image"] is not None:
                last = await load_image(params["last_image"], "last_image", allow_data_uri=True, formats=ARK_FORMATS)
        except ImageProblem as exc:
            sim.record_submit(NAME, body, accepted=False)
            return error_response(400, str(exc), param="content")
        images = Images(first, last)
        task = start_task(
            sim,
            NAME,
            prompt=params["prompt"],
            images=images,
            ratio=FOLLOW_IMAGE if params["ratio"] == "adaptive" else params["ratio"],
            resolution=params["resolution"],
            duration_s=params["duration"],
            audio=params["generate_audio"],
            seed=params["seed"],
            seed_max=SEED_MAX,
            outcome=fault_outcome(request),
            task_id=f"cgt-{time.strftime('%Y%m%d%H%M%S', time.gmtime())}-{uuid.uuid4().hex[:5]}",
            meta={
                "model": params["model"],
                "service_tier": params["service_tier"],
                "execution_expires_after": params["execution_expires_after"],
                "return_last_frame": params["return_last_frame"],
                "last_frame_source": (last or first).data,
            },
        )
        if task.output_url_ttl_s is None:
            task.output_url_ttl_s = URL_TTL_S
        deadline = task.created_mono + params["execution_expires_after"]
        if task.done_mono > deadline:  # it would end past its deadline: it expires then, unbilled (§7.2)
            task.outcome, task.start_mono, task.done_mono = "expire", min(task.start_mono, deadline), deadline
        sim.record_submit(NAME, _recorded(body, images), accepted=True, task_id=task.id)
        return JSONResponse({"id": task.id})

    async def query(request: Request) -> Response:
        if not authorized(sim, request):
            return bad_key()
        task = find(request)
        if task is None:
            return not_found(request.path_params["task_id"])
        return JSONResponse(task_object(request, task))

    async def listing(request: Request) -> Response:
        if not authorized(sim, request):
            return bad_key()
        q = request.query_params
        try:
            page_num = v.integer({"page_num": _int(q.get("page_num"))}, "page_num", 1, PAGE_SIZE_MAX, 1)
            page_size = v.integer({"page_size": _int(q.get("page_size"))}, "page_size", 1, PAGE_SIZE_MAX, 10)
        except v.BadField as exc:
            return error_response(400, str(exc), param=exc.field)
        ids = set(q.getlist("filter.task_ids")) | {i for raw in q.getlist("filter.task_ids") for i in raw.split(",")}
        since = time.time() - LIST_WINDOW_S
        delay = sim.provider_config(NAME).list_delay_s
        tasks = [
            t
            for t in sim.provider_tasks(NAME)
            if not _deleted(t)
            and since <= t.created_wall <= time.time() - delay
            and q.get("filter.model") in (None, t.meta["model"])
            and q.get("filter.status") in (None, STATUS[t.phase()])
            and q.get("filter.service_tier") in (None, t.meta["service_tier"])
            and (not ids or t.id in ids)
        ]
        page = tasks[(page_num - 1) * page_size : page_num * page_size]
        return JSONResponse({"items": [task_object(request, t) for t in page], "total": len(tasks)})

    async def delete(request: Request) -> Response:
        if not authorized(sim, request):
            return bad_key()
        task = find(request)
        if task is None:
            return not_found(request.path_params["task_id"])
        phase = task.phase()
        if phase == "queued" and sim.cancel_task(task):
            return Response(b"", status_code=200)
        if phase in ("running", "cancelled"):
            # Ark's answer is "not allowed" (§7.7); the code is our invention.
            message = f"The task {task.id} is {phase} and cannot be cancelled; only queued tasks can."
            return error_response(400, message, code="InvalidAction.TaskNotCancellable")
        task.meta["deleted"] = True  # succeeded, failed, expired: the record is deleted (§7.7)
        return Response(b"", status_code=200)

    async def last_frame(request: Request) -> Response:
        task = sim.get_task(NAME, request.path_params["task_id"], forgotten=True)
        if task is None or task.phase() != "succeeded" or not task.meta.get("return_last_frame"):
            return storage_error(404, "NoSuchKey", "The specified key does not exist.")
        expires = task.output_expires_wall()
        if expires is not None and time.time() > expires:
            return expired_response()
        return Response(_last_frame_png(task), media_type="image/png")

    return [
        Route(TASKS_PATH, create, methods=["POST"]),
        Route(TASKS_PATH, listing, methods=["GET"]),
        Route(TASKS_PATH + "/{task_id}", query, methods=["GET"]),
        Route(TASKS_PATH + "/{task_id}", delete, methods=["DELETE"]),
        Route("/last_frames/{task_id}.png", last_frame, methods=["GET"]),
    ]


def _int(raw: str | None) -> int | str | None:
    return int(raw) if raw is not None and raw.lstrip("-").isdigit() else raw
