"""WaveSpeedAI ``bytedance/seedance-v1.5-pro/image-to-video`` (docs/providers.md §4).

Quirks kept here: the ``{"code","message","data":{…}}`` envelope on submit and poll; poll at
``data.urls.get`` (else ``/api/v3/predictions/{id}/result``); URL-only images; the table lists no
adaptive/auto ratio and no 1080p; seed up to 2147483647; ``generate_audio`` defaults to true upstream;
optional ``enable_sync_mode`` whose gateway timeout (HTTP 504 / ``code`` 5004) still carries the
task id, which we keep polling.
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

SUBMIT_PATH = "/api/v3/bytedance/seedance-v1.5-pro/image-to-video"
SYNC_TIMEOUT_CODE = 5004

_STATES = {
    "created": TaskState.QUEUED,
    "processing": TaskState.RUNNING,
    "completed": TaskState.SUCCEEDED,
    "failed": TaskState.FAILED,
    # The official SDK also treats these as terminal (docs/providers.md §4.3); "deleted" appears in a blog post only.
    "cancelled": TaskState.CANCELLED,
    "timeout": TaskState.EXPIRED,
    "deleted": TaskState.EXPIRED,
}


class WaveSpeedAdapter(ProviderAdapter):
    name = "wavespeed"
    env_key = "WAVESPEED_API_KEY"
    default_base_url = "https://api.wavespeed.ai"
    task_retention_s = 7 * 86400.0  # predictions and their outputs are deleted after 7 days: docs/providers.md §4.6
    capabilities = Capabilities(
        resolutions=frozenset({"480p", "720p"}),
        ratios=frozenset({"21:9", "16:9", "4:3", "1:1", "3:4", "9:16"}),
        adaptive_wire_value=None,  # prose mentions "auto", the parameter table does not: resolved locally
        seed_max=2147483647,
        image_formats=BYTEDANCE_IMAGE_FORMATS,
        accepts_data_uri=False,
        max_image_bytes=20 * 1024 * 1024,  # WaveSpeed's upload endpoint caps images at 20 MB (§4.2, §2.5)
        image_size_rule="WaveSpeed accepts image files of at most 20 MB",
        source="docs/providers.md §4.2",
    )

    def __init__(self, *, enable_sync_mode: bool = False):
        self.enable_sync_mode = enable_sync_mode

    def build_submit(self, req: GenerationRequest, images: ImageRefs, aspect_ratio: str) -> WireRequest:
        body: dict[str, Any] = {"prompt": req.prompt, "image": images.image}
        if images.last_image:
            body["last_image"] = images.last_image
        body.update(
            aspect_ratio=aspect_ratio,
            duration=req.duration,
            resolution=req.resolution,
            generate_audio=req.generate_audio,
            camera_fixed=req.camera_fixed,
            seed=req.seed,
        )
        if self.enable_sync_mode:
            body["enable_sync_mode"] = True
        return WireRequest("POST", SUBMIT_PATH, json=body)

    def parse_submit(self, reply: WireReply) -> TaskSnapshot | None:
        data = body_dict(reply).get("data")
        if not isinstance(data, dict) or not data.get("id"):
            return None
        if 200 <= reply.status_code < 300 or _is_sync_timeout(reply):
            return self._snapshot(data)
        return None

    def build_poll(self, task_id: str, poll_path: str | None = None) -> WireRequest:
        return WireRequest("GET", poll_path or f"/api/v3/predictions/{task_id}/result")

    def parse_poll(self, reply: WireReply) -> TaskSnapshot:
        data = body_dict(reply).get("data")
        return self._snapshot(data if isinstance(data, dict) else {})

    def error_message(self, reply: WireReply) -> tuple[str | None, str]:
        body = body_dict(reply)
        data = nested_dict(body, "data")
        code = body.get("error_code") or body.get("code")
        text = body.get("message") or data.get("error") or body.get("error")
        if not text and isinstance(reply.body, str):
            text = reply.body
        return (str(code) if code is not None else None), str(text or f"HTTP {reply.status_code}")

    def _snapshot(self, data: dict) -> TaskSnapshot:
        raw = str(data.get("status") or "")
        state = map_status(_STATES, raw)
        outputs = data.get("outputs") or []
        url = outputs[0] if outputs and isinstance(outputs[0], str) else None
        error = (data.get("error") or None) if state is not TaskState.SUCCEEDED else None
        if data.get("code") == SYNC_TIMEOUT_CODE and not state.terminal:
            error = None  # the sync wait ended, the task did not (docs/providers.md §4.3)
        if state is TaskState.FAILED and error and "expire" in str(error).lower():
            state = TaskState.EXPIRED  # an expiry reported as "failed" with a reason, as v3async.py does [INF]
        if state is TaskState.SUCCEEDED and not url:
            state, error = TaskState.FAILED, "completed without an output URL"
        if state.terminal and state is not TaskState.SUCCEEDED and not error:
            error = raw
        urls = nested_dict(data, "urls")
        timings = nested_dict(data, "timings")
        return TaskSnapshot(
            task_id=str(data.get("id")),
            state=state,
            raw_status=raw,
            output_url=url,
            error=error,
            moderation=state is TaskState.FAILED
            and (looks_like_moderation(error) or any(data.get("has_nsfw_contents") or [])),
            poll_url=urls.get("get"),
            extra={"inference_ms": as_float(timings.get("inference"))},
        )


def _is_sync_timeout(reply: WireReply) -> bool:
    body = body_dict(reply)
    data = nested_dict(body, "data")
    return SYNC_TIMEOUT_CODE in (body.get("code"), data.get("code")) or "Sync mode timed out" in str(data.get("error"))
