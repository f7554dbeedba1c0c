"""The "v3 async + task-result" platform that JieKou AI and Novita AI both run (docs/providers.md §5).

Same body (``ratio`` not ``aspect_ratio``, ``adaptive``, ``fps`` 24, ``service_tier``, ``watermark``,
``execution_expires_after``), same ``TASK_STATUS_*`` enum, same error body
``{"code","reason","message","metadata"}``. The two provider modules only name themselves.
"""

from __future__ import annotations

from typing import Any

from seedance_pipeline.core.request import GenerationRequest
from seedance_pipeline.providers.base import (
    BYTEDANCE_IMAGE_FORMATS,
    Capabilities,
    ImageRefs,
    ProviderAdapter,
    WireReply,
    WireRequest,
    as_float,
    body_dict,
    looks_like_moderation,
    map_status,
    nested_dict,
)
from seedance_pipeline.providers.states import TaskSnapshot, TaskState

SUBMIT_PATH = "/v3/async/seedance-v1.5-pro-i2v"
RESULT_PATH = "/v3/async/task-result"

_STATES = {
    "TASK_STATUS_QUEUED": TaskState.QUEUED,
    "TASK_STATUS_PROCESSING": TaskState.RUNNING,
    "TASK_STATUS_SUCCEED": TaskState.SUCCEEDED,
    "TASK_STATUS_FAILED": TaskState.FAILED,
}

V3_CAPABILITIES = Capabilities(
    # seeds 002/003 list 1080p; other copies of the same pages say "not yet supported" (docs/providers.md §5.2).
    resolutions=frozenset({"480p", "720p", "1080p"}),
    ratios=frozenset({"16:9", "4:3", "1:1", "3:4", "9:16", "21:9"}),
    adaptive_wire_value="adaptive",
    seed_max=4294967295,
    image_formats=BYTEDANCE_IMAGE_FORMATS,
    accepts_data_uri=True,
    extras=frozenset({"service_tier", "execution_expires_after", "watermark"}),
    source="docs/providers.md §5.2",
)


class V3AsyncAdapter(ProviderAdapter):
    capabilities = V3_CAPABILITIES

    def build_submit(self, req: GenerationRequest, images: ImageRefs, aspect_ratio: str) -> WireRequest:
        body: dict[str, Any] = {"prompt": req.prompt, "image": images.image}
        if images.last_image:
            body["last_image"] = images.last_image
        body.update(
            ratio=aspect_ratio,
            duration=req.duration,
            resolution=req.resolution,
            fps=24,
            seed=req.seed,
            camera_fixed=req.camera_fixed,
            generate_audio=req.generate_audio,
            watermark=bool(req.watermark),
            service_tier=req.service_tier or "default",
        )
        if req.execution_expires_after is not None:
            body["execution_expires_after"] = req.execution_expires_after
        return WireRequest("POST", SUBMIT_PATH, json=body)

    def parse_submit(self, reply: WireReply) -> TaskSnapshot | None:
        body = body_dict(reply)
        # The OpenAPI example says task_id; Novita's prose says id. Accept either (docs/providers.md §5.3).
        task_id = body.get("task_id") or body.get("id")
        if not 200 <= reply.status_code < 300 or not task_id:
            return None
        return TaskSnapshot(task_id=str(task_id), state=TaskState.QUEUED, raw_status="submitted")

    def build_poll(self, task_id: str, poll_path: str | None = None) -> WireRequest:
        return WireRequest("GET", RESULT_PATH, params={"task_id": task_id})

    def parse_poll(self, reply: WireReply) -> TaskSnapshot:
        body = body_dict(reply)
        task = nested_dict(body, "task")
        raw = str(task.get("status") or "")
        state = map_status(_STATES, raw)
        videos = [v for v in body.get("videos") or [] if isinstance(v, dict)]
        url = videos[0].get("video_url") if videos else None
        error = task.get("reason") or None
        if state is TaskState.FAILED and error and "expire" in error.lower():
            state = TaskState.EXPIRED  # Ark's "expired" surfaces as FAILED with a reason here [INF]
        if state is TaskState.SUCCEEDED and not url:
            state, error = TaskState.FAILED, "succeeded without a video URL"
        if state.terminal and state is not TaskState.SUCCEEDED and not error:
            error = raw
        extra = nested_dict(body, "extra")
        return TaskSnapshot(
            task_id=str(task.get("task_id") or ""),
            state=state,
            raw_status=raw,
            output_url=url,
            error=error if state is not TaskState.SUCCEEDED else None,
            moderation=state is TaskState.FAILED and looks_like_moderation(error),
            eta_s=_soonest(as_float(task.get("eta"))),
            progress=as_float(task.get("progress_percent")),
            url_ttl_s=as_float(videos[0].get("video_url_ttl")) if videos else None,
            extra={"seed": extra.get("seed")} if extra.get("seed") is not None else {},
        )

    def error_message(self, reply: WireReply) -> tuple[str | None, str]:
        body = body_dict(reply)
        text = body.get("message") or body.get("reason") or (reply.body if isinstance(reply.body, str) else "")
        code = body.get("reason") or body.get("code")
        return (str(code) if code is not None else None), str(text or f"HTTP {reply.status_code}")


def _soonest(eta: float | None) -> float | None:
    """``task.eta`` counts whole seconds, so the task may end up to a second sooner than it says; waiting
    the full figure made a task with 0.1 s to go (``"eta": 1``) wait a whole second before its next poll."""
    return None if eta is None else max(0.0, eta - 1.0)
