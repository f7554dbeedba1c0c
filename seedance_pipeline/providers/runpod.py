"""RunPod public endpoint ``seedance-v1-5-pro-i2v`` (docs/providers.md §3).

Quirks kept here: the ``{"input": {...}}`` envelope; ``/run`` (default) or ``/runsync?wait=`` whose
non-final answer continues by polling ``/status/{id}``; URL-only images; no adaptive ratio; no 1080p;
``generate_audio`` defaults to false upstream; ``output.cost`` in USD; failed jobs carry an ``error``
string that may embed the upstream JSON (``Error submitting task: 400, {"code":400,"message":…}``).
"""

from __future__ import annotations

import json
import re
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

ENDPOINT = "/v2/seedance-v1-5-pro-i2v"

_STATES = {
    "IN_QUEUE": TaskState.QUEUED,
    "IN_PROGRESS": TaskState.RUNNING,
    "RUNNING": TaskState.RUNNING,
    "COMPLETED": TaskState.SUCCEEDED,
    "FAILED": TaskState.FAILED,
    "CANCELLED": TaskState.CANCELLED,
    "TIMED_OUT": TaskState.EXPIRED,
}
_EMBEDDED_JSON = re.compile(r"\{.*\}", re.S)


class RunPodAdapter(ProviderAdapter):
    name = "runpod"
    env_key = "RUNPOD_API_KEY"
    default_base_url = "https://api.runpod.ai"
    task_retention_s = 30 * 60.0  # after completion, for /run (1 min for /runsync): docs/providers.md §3.6
    output_url_ttl_s = 7 * 86400.0  # §3.6
    capabilities = Capabilities(
        resolutions=frozenset({"480p", "720p"}),
        ratios=frozenset({"21:9", "16:9", "9:16", "1:1", "4:3", "3:4"}),
        adaptive_wire_value=None,
        # The page says only "-1 for random"; the upstream model's range is [-1, 2^32-1] (docs/providers.md §7.2) [INF].
        seed_max=4294967295,
        image_formats=BYTEDANCE_IMAGE_FORMATS,
        accepts_data_uri=False,
        source="docs/providers.md §3.2",
    )

    def __init__(self, *, use_runsync: bool = False, runsync_wait_ms: int | None = None):
        if runsync_wait_ms is not None and not 1000 <= runsync_wait_ms <= 300000:
            raise ValueError("runsync_wait_ms must be 1000..300000 (docs/providers.md §3.1)")
        self.use_runsync, self.runsync_wait_ms = use_runsync, runsync_wait_ms
        if use_runsync:
            self.task_retention_s = 60.0

    def build_submit(self, req: GenerationRequest, images: ImageRefs, aspect_ratio: str) -> WireRequest:
        body: dict[str, Any] = {"prompt": req.prompt, "image": images.image}
        if images.last_image:
            body["last_image"] = images.last_image
        body.update(
            duration=req.duration,
            resolution=req.resolution,
            aspect_ratio=aspect_ratio,
            camera_fixed=req.camera_fixed,
            generate_audio=req.generate_audio,
            seed=req.seed,
        )
        if self.use_runsync:
            params = {"wait": str(self.runsync_wait_ms)} if self.runsync_wait_ms else {}
            return WireRequest("POST", f"{ENDPOINT}/runsync", json={"input": body}, params=params)
        return WireRequest("POST", f"{ENDPOINT}/run", json={"input": body})

    def parse_submit(self, reply: WireReply) -> TaskSnapshot | None:
        if not 200 <= reply.status_code < 300 or not body_dict(reply).get("id"):
            return None
        return self._snapshot(body_dict(reply))

    def build_poll(self, task_id: str, poll_path: str | None = None) -> WireRequest:
        return WireRequest("GET", f"{ENDPOINT}/status/{task_id}")

    def parse_poll(self, reply: WireReply) -> TaskSnapshot:
        return self._snapshot(body_dict(reply))

    def build_cancel(self, task_id: str) -> WireRequest:
        # Cancels a queued or running job on serverless endpoints; on public endpoints [UNKNOWN] (§3.7).
        return WireRequest("POST", f"{ENDPOINT}/cancel/{task_id}")

    def error_message(self, reply: WireReply) -> tuple[str | None, str]:
        body = body_dict(reply)
        text = body.get("error") or body.get("message") or (reply.body if isinstance(reply.body, str) else "")
        return _unwrap_upstream(str(text or f"HTTP {reply.status_code}"))

    def _snapshot(self, body: dict) -> TaskSnapshot:
        raw = str(body.get("status") or "")
        state = map_status(_STATES, raw)
        output = nested_dict(body, "output")
        url = output.get("video_url") or output.get("result") or output.get("url")
        error = code = None
        if state is TaskState.SUCCEEDED and not url:
            # "Terminal status but no URL" is an error, not a transient (docs/providers.md §8.5).
            state, error = TaskState.FAILED, "completed without an output URL"
        elif state in (TaskState.FAILED, TaskState.EXPIRED, TaskState.CANCELLED):
            code, error = _unwrap_upstream(str(body.get("error") or raw))
        return TaskSnapshot(
            task_id=str(body.get("id")),
            state=state,
            raw_status=raw,
            output_url=url,
            error=error,
            error_code=code,
            moderation=state is TaskState.FAILED and looks_like_moderation(error, code),
            reported_cost_usd=as_float(output.get("cost")),
            extra={k: body[k] for k in ("delayTime", "executionTime", "workerId") if k in body},
        )


def _unwrap_upstream(text: str) -> tuple[str | None, str]:
    """``Error submitting task: 400, {"code":400,"message":"…"}`` -> the inner message (docs/providers.md §3.4)."""
    match = _EMBEDDED_JSON.search(text)
    if match:
        try:
            inner = json.loads(match.group(0))
        except ValueError:
            return None, text
        if isinstance(inner, dict) and inner.get("message"):
            code = inner.get("code")
            return (str(code) if code is not None else None), str(inner["message"])
    return None, text
