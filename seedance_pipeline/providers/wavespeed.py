"""WaveSpeedAI ``bytedance/seedance-v1.5-pro/image-to-video`` (docs/providers.md §4).

Quirks kept here: the ``{"code","message","data":{…}}`` envelope on submit and poll; poll at
``data.urls.get`` (else ``/api/v3/predictions/{id}/result``); URL-only images; the table lists no
adaptive/auto ratio and no 1080p; seed up to 2147483647; ``generate_audio`` defaults to true upstream;
optional ``enable_sync_mode`` whose gateway timeout (HTTP 504 / ``code`` 5004) still carries the
task id, which we keep polling.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from seedance_pipeline.core.images import sent_sha256
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
from seedance_pipeline.providers.states import ListedTask, TaskSnapshot, TaskState

MODEL_ID = "bytedance/seedance-v1.5-pro/image-to-video"
SUBMIT_PATH = f"/api/v3/{MODEL_ID}"
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
    list_visibility_s = 60.0  # how soon a prediction is in the list is [UNKNOWN] (§4.7): a minute assumed [INF]
    list_page = 100  # the list's page size is [UNKNOWN]: a full page is taken as possibly cut
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

    def build_list(self) -> WireRequest:
        return WireRequest("GET", "/api/v3/predictions")

    def parse_list(self, reply: WireReply) -> tuple[list[ListedTask], bool]:
        """``data`` is a list of predictions or an object holding one under ``items`` (the shape beyond the
        fields is [UNKNOWN], §4.7); each has ``id``, ``model``, ``created_at`` (ISO 8601) and the ``input`` it
        was given. Predictions of other models are left out."""
        data = body_dict(reply).get("data")
        items: list[Any] = (
            data if isinstance(data, list) else list(nested_dict(body_dict(reply), "data").get("items") or [])
        )
        tasks = []
        for item in items:
            if not isinstance(item, dict) or not item.get("id") or item.get("model", MODEL_ID) != MODEL_ID:
                continue
            given = item["input"] if isinstance(item.get("input"), dict) else {}
            request = {ours: given[theirs] for theirs, ours in _LISTED_FIELDS.items() if theirs in given}
            if isinstance(given.get("image"), str):
                request["image_sent_sha256"] = sent_sha256(given["image"])
            tasks.append(ListedTask(str(item["id"]), _epoch(item.get("created_at")), request))
        return tasks, len(items) < self.list_page

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


# The input fields a listed prediction is matched on: WaveSpeed's name -> ours (the image by its digest).
_LISTED_FIELDS = {
    "prompt": "prompt",
    "duration": "duration",
    "resolution": "resolution",
    "aspect_ratio": "aspect_ratio_sent",
    "generate_audio": "generate_audio",
    "camera_fixed": "camera_fixed",
    "seed": "seed",
}


def _epoch(value: Any) -> float | None:
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
