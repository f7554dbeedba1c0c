"""VibeDream ``seedance-1.5-pro-i2v`` (docs/providers.md §6).

Quirks kept here: ``auto`` is its word for adaptive; seed range "-1 – 1000" as documented (sic);
public-URL images only (JPEG, PNG, GIF, WebP); the charge comes back at submit as ``costCents``;
``estimatedTime`` like ``"60-120s"`` is our first-poll hint; ``statusUrl`` is where to poll.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

from seedance_pipeline.core.request import GenerationRequest
from seedance_pipeline.providers.base import (
    Capabilities,
    ImageRefs,
    ProviderAdapter,
    WireReply,
    WireRequest,
    body_dict,
    looks_like_moderation,
    map_status,
)
from seedance_pipeline.providers.states import TaskSnapshot, TaskState

SUBMIT_PATH = "/api/v1/models/seedance-1.5-pro-i2v/generate"

_STATES = {"processing": TaskState.RUNNING, "completed": TaskState.SUCCEEDED, "failed": TaskState.FAILED}
_ESTIMATE = re.compile(r"(\d+(?:\.\d+)?)")


class VibeDreamAdapter(ProviderAdapter):
    name = "vibedream"
    env_key = "VIBEDREAM_API_KEY"
    default_base_url = "https://api.vibedream.ai"
    capabilities = Capabilities(
        resolutions=frozenset({"480p", "720p", "1080p"}),
        ratios=frozenset({"16:9", "9:16", "1:1", "4:3", "3:4", "21:9"}),
        adaptive_wire_value="auto",
        seed_max=1000,
        image_formats=frozenset({"JPEG", "PNG", "GIF", "WEBP"}),
        accepts_data_uri=False,
        source="docs/providers.md §6.2",
    )

    def build_submit(self, req: GenerationRequest, images: ImageRefs, aspect_ratio: str) -> WireRequest:
        body: dict[str, Any] = {"prompt": req.prompt, "image": images.image}
        if images.last_image:
            body["last_image"] = images.last_image
        body.update(
            duration=req.duration,
            resolution=req.resolution,
            aspect_ratio=aspect_ratio,
            camera_fixed=req.camera_fixed,
            seed=req.seed,
            generate_audio=req.generate_audio,
        )
        return WireRequest("POST", SUBMIT_PATH, json=body)

    def parse_submit(self, reply: WireReply) -> TaskSnapshot | None:
        body = body_dict(reply)
        if not 200 <= reply.status_code < 300 or not body.get("id"):
            return None
        cents = body.get("costCents")
        eta = _ESTIMATE.search(str(body.get("estimatedTime") or ""))
        return replace(
            self._snapshot(body),
            reported_cost_usd=cents / 100 if isinstance(cents, (int, float)) else None,
            eta_s=float(eta.group(1)) if eta else None,  # the lower bound of "60-120s"
            poll_url=body.get("statusUrl"),
        )

    def build_poll(self, task_id: str, poll_path: str | None = None) -> WireRequest:
        return WireRequest("GET", poll_path or f"/api/v1/predictions/{task_id}")

    def parse_poll(self, reply: WireReply) -> TaskSnapshot:
        return self._snapshot(body_dict(reply))

    def error_message(self, reply: WireReply) -> tuple[str | None, str]:
        body = body_dict(reply)
        text = body.get("error") or body.get("message") or (reply.body if isinstance(reply.body, str) else "")
        code = body.get("code")
        return (str(code) if code is not None else None), str(text or f"HTTP {reply.status_code}")

    def _snapshot(self, body: dict) -> TaskSnapshot:
        raw = str(body.get("status") or "")
        state = map_status(_STATES, raw)
        outputs = body.get("outputs") or []
        url = outputs[0] if outputs and isinstance(outputs[0], str) else None
        error = body.get("error") or None
        if state is TaskState.FAILED and error and "expire" in str(error).lower():
            state = TaskState.EXPIRED  # only processing/completed/failed exist; expiry shows in the error [INF]
        if state is TaskState.SUCCEEDED and not url:
            state, error = TaskState.FAILED, "completed without an output URL"
        if state is TaskState.FAILED and not error:
            error = raw
        return TaskSnapshot(
            task_id=str(body.get("id")),
            state=state,
            raw_status=raw,
            output_url=url,
            error=error if state is not TaskState.SUCCEEDED else None,
            moderation=state is TaskState.FAILED and looks_like_moderation(error),
            extra={k: body[k] for k in ("createdAt", "completedAt") if body.get(k)},
        )
