"""ByteDance's own Seedance 1.5 Pro API: BytePlus ModelArk, or Volcengine Ark in China (docs/providers.md §7).

Quirks kept here: one ``content[]`` list (the prompt as a ``text`` item, each image as an ``image_url`` item with
its ``role``: a last frame needs the first frame's role, else Ark answers 400); the region's base URL and model id
(``SEEDANCE_MODELARK_REGION``, ``SEEDANCE_MODELARK_MODEL``); ``return_last_frame`` (the clip's last frame comes back
as ``content.last_frame_url``); ``service_tier`` and ``execution_expires_after`` always sent; six task states;
errors ``{"error": {"code", "message", "param", "type"}}`` with moderation codes per kind; the charge reported as
``usage.completion_tokens`` at the published token rates; a task list (``filter.model``, the last 7 days) and a
``DELETE`` that cancels only a queued task (and deletes the record of a finished one: never sent for those).
"""

from __future__ import annotations

from typing import Any

from seedance_pipeline.core.request import GenerationRequest
from seedance_pipeline.core.settings import Setting
from seedance_pipeline.providers.base import (
    BYTEDANCE_IMAGE_FORMATS,
    Capabilities,
    ImageRefs,
    ProviderAdapter,
    WireReply,
    WireRequest,
    as_float,
    body_dict,
    map_status,
    nested_dict,
)
from seedance_pipeline.providers.states import ListedTask, TaskSnapshot, TaskState

TASKS_PATH = "/contents/generations/tasks"
# Region -> (API root, the 1.5 Pro model id there) (docs/providers.md §7.1: base URLs [SRC], model ids [SRC-3P]).
REGIONS = {
    "byteplus": ("https://ark.ap-southeast.bytepluses.com/api/v3", "seedance-1-5-pro-251215"),
    "volcengine": ("https://ark.cn-beijing.volces.com/api/v3", "doubao-seedance-1-5-pro-251215"),
}
DEFAULT_EXPIRES_AFTER_S = 172800  # Ark's default (§7.2); sent explicitly so every task has a known deadline
# USD per million completion tokens by (audio, tier): ByteDance's published rates (§7.8 [SRC-3P]); the same
# figures as this provider's block in pricing/prices.yaml (a test holds them equal).
USD_PER_MILLION_TOKENS = {(True, "default"): 2.4, (False, "default"): 1.2, (True, "flex"): 1.2, (False, "flex"): 0.6}
LIST_PAGE_SIZE = 500  # the largest page_size the list takes (§7.7)
URL_TTL_S = 24 * 3600.0  # content.video_url and content.last_frame_url live 24 h (§7.6)

_STATES = {
    "queued": TaskState.QUEUED,
    "running": TaskState.RUNNING,
    "succeeded": TaskState.SUCCEEDED,
    "failed": TaskState.FAILED,
    "expired": TaskState.EXPIRED,
    "cancelled": TaskState.CANCELLED,
}

# Ark's moderation codes (§7.4), by what was flagged: kept apart in the failure reason. Longest prefix first.
_MODERATION_KINDS = (
    ("AudioSensitiveContentDetected.PolicyViolation", "copyright (the audio may contain copyrighted material)"),
    ("InputTextSensitiveContentDetected", "input text"),
    ("InputImageSensitiveContentDetected", "input image"),
    ("OutputVideoSensitiveContentDetected", "output video"),
    ("OutputAudioSensitiveContentDetected", "output audio"),
    ("SensitiveContentDetected", "content"),
)

REGION = Setting(
    "SEEDANCE_MODELARK_REGION",
    lambda raw: _one_of(raw, tuple(REGIONS)),
    f"one of {', '.join(REGIONS)}",
    "byteplus",
    "ModelArk region: `byteplus` (ark.ap-southeast.bytepluses.com) or `volcengine` (ark.cn-beijing.volces.com)",
    shown_default="`byteplus`",
)
MODEL = Setting(
    "SEEDANCE_MODELARK_MODEL",
    lambda raw: raw,
    "a model id or an endpoint id (ep-...)",
    None,
    "ModelArk model id or endpoint id",
    shown_default="the region's 1.5 Pro id",
)


def _one_of(raw: str, allowed: tuple[str, ...]) -> str:
    if raw.lower() not in allowed:
        raise ValueError(f"one of {', '.join(allowed)}")
    return raw.lower()


def moderation_kind(code: str | None) -> str | None:
    """What an Ark moderation code says was flagged; None when the code is not a moderation code."""
    for prefix, kind in _MODERATION_KINDS:
        if code and code.startswith(prefix):
            return kind
    return None


class ModelArkAdapter(ProviderAdapter):
    name = "modelark"
    env_key = "ARK_API_KEY"
    default_base_url = REGIONS["byteplus"][0]
    settings = (REGION, MODEL)
    task_retention_s = 7 * 86400.0  # task ids are queryable and listed for the last 7 days (§7.6)
    output_url_ttl_s = URL_TTL_S
    list_visibility_s = 60.0  # how soon a task shows in the list is [UNKNOWN]: a minute assumed [INF]
    list_shows_images = False  # listed tasks are query objects: no prompt, no images (§7.3)
    cancellable_states = frozenset({TaskState.QUEUED})  # running: not allowed; finished: the record is deleted
    capabilities = Capabilities(
        resolutions=frozenset({"480p", "720p", "1080p"}),
        ratios=frozenset({"16:9", "4:3", "1:1", "3:4", "9:16", "21:9"}),
        adaptive_wire_value="adaptive",
        seed_max=4294967295,
        # HEIC/HEIF for 1.5 Pro (§2.5 [SRC-3P]), read through pillow-heif (core/images.py).
        image_formats=BYTEDANCE_IMAGE_FORMATS | {"HEIF"},
        accepts_data_uri=True,
        extras=frozenset({"service_tier", "execution_expires_after", "watermark"}),
        source="docs/providers.md §7.2, §2.5",
    )

    def __init__(self, *, region: str = "byteplus", model: str | None = None):
        if region not in REGIONS:
            raise ValueError(f"region={region!r}: one of {', '.join(REGIONS)}")
        self.region = region
        self.model = model or REGIONS[region][1]

    @classmethod
    def from_env(cls) -> ModelArkAdapter:
        return cls(region=REGION.read() or "byteplus", model=MODEL.read())

    @property
    def base_url(self) -> str:
        return REGIONS[self.region][0]

    def build_submit(self, req: GenerationRequest, images: ImageRefs, aspect_ratio: str) -> WireRequest:
        content: list[dict[str, Any]] = [
            {"type": "text", "text": req.prompt},
            {"type": "image_url", "image_url": {"url": images.image}, "role": "first_frame"},
        ]
        if images.last_image:
            content.append({"type": "image_url", "image_url": {"url": images.last_image}, "role": "last_frame"})
        body: dict[str, Any] = {
            "model": self.model,
            "content": content,
            "ratio": aspect_ratio,
            "resolution": req.resolution,
            "duration": req.duration,
            "seed": req.seed,
            "camera_fixed": req.camera_fixed,
            "watermark": bool(req.watermark),
            "generate_audio": req.generate_audio,
            "return_last_frame": True,
            "service_tier": req.service_tier or "default",
            "execution_expires_after": req.execution_expires_after or DEFAULT_EXPIRES_AFTER_S,
        }
        return WireRequest("POST", TASKS_PATH, json=body)

    def parse_submit(self, reply: WireReply) -> TaskSnapshot | None:
        task_id = body_dict(reply).get("id")
        if not 200 <= reply.status_code < 300 or not task_id:
            return None
        return TaskSnapshot(task_id=str(task_id), state=TaskState.QUEUED, raw_status="submitted")

    def build_poll(self, task_id: str, poll_path: str | None = None) -> WireRequest:
        return WireRequest("GET", f"{TASKS_PATH}/{task_id}")

    def parse_poll(self, reply: WireReply) -> TaskSnapshot:
        return self._snapshot(body_dict(reply))

    def build_list(self) -> WireRequest:
        params = {"page_num": "1", "page_size": str(LIST_PAGE_SIZE), "filter.model": self.model}
        return WireRequest("GET", TASKS_PATH, params=params)

    def parse_list(self, reply: WireReply) -> tuple[list[ListedTask], bool]:
        """``items`` are task objects as a query answers them (§7.3, §7.7): they carry the request's ``resolution``,
        ``ratio``, ``duration``, ``seed`` (the seed used: only an explicit seed can match) and ``created_at``, and
        neither prompt nor images, so a listed task is matched on those and its creation time alone."""
        body = body_dict(reply)
        items = [i for i in body.get("items") or [] if isinstance(i, dict) and i.get("id")]
        tasks = []
        for item in items:
            if item.get("model") not in (None, self.model):
                continue
            request = {ours: item[theirs] for theirs, ours in _LISTED_FIELDS.items() if item.get(theirs) is not None}
            tasks.append(ListedTask(str(item["id"]), as_float(item.get("created_at")), request))
        total = body.get("total")
        complete = isinstance(total, int) and total <= len(items) if total is not None else len(items) < LIST_PAGE_SIZE
        return tasks, complete

    def build_cancel(self, task_id: str) -> WireRequest:
        return WireRequest("DELETE", f"{TASKS_PATH}/{task_id}")

    def parse_cancel(self, reply: WireReply) -> TaskSnapshot | None:
        # An empty 200 (§7.7): the task's state after it is asked for with a query.
        return None

    def error_message(self, reply: WireReply) -> tuple[str | None, str]:
        body = body_dict(reply)
        error = nested_dict(body, "error")
        code = error.get("code") or body.get("code")
        text = error.get("message") or body.get("message") or (reply.body if isinstance(reply.body, str) else "")
        if error.get("param"):
            text = f"{text} (param {error['param']})"
        return (str(code) if code else None), str(text or f"HTTP {reply.status_code}")

    def _snapshot(self, body: dict[str, Any]) -> TaskSnapshot:
        raw = str(body.get("status") or "")
        state = map_status(_STATES, raw)
        content = nested_dict(body, "content")
        url = content.get("video_url") or None
        error = nested_dict(body, "error")
        code = str(error["code"]) if error.get("code") else None
        message = error.get("message") or None
        kind = moderation_kind(code)
        if state is TaskState.SUCCEEDED and not url:
            state, message = TaskState.FAILED, "succeeded without a video URL"
        reason = None
        if state.terminal and state is not TaskState.SUCCEEDED:
            reason = message or raw
            if kind:
                reason = f"moderation ({kind}): {reason}"
            if code:
                reason = f"{reason} ({code})"
        extra: dict[str, Any] = {}
        if content.get("last_frame_url"):
            extra["last_frame_url"] = content["last_frame_url"]
        if body.get("seed") is not None:
            extra["seed"] = body["seed"]
        return TaskSnapshot(
            task_id=str(body.get("id") or ""),
            state=state,
            raw_status=raw,
            output_url=url if state is TaskState.SUCCEEDED else None,
            error=reason,
            error_code=code,
            moderation=state is TaskState.FAILED and kind is not None,
            reported_cost_usd=_charge(body) if state is TaskState.SUCCEEDED else None,
            url_ttl_s=URL_TTL_S if state is TaskState.SUCCEEDED else None,
            extra=extra,
        )


def _charge(body: dict[str, Any]) -> float | None:
    """``usage.completion_tokens`` at the rate of the task's tier and audio; only succeeded tasks are charged
    (§7.8). A task object without ``generate_audio`` is priced with audio (Ark's default, §7.2)."""
    tokens = as_float(nested_dict(body, "usage").get("completion_tokens"))
    if tokens is None:
        return None
    tier = body.get("service_tier") if body.get("service_tier") in ("default", "flex") else "default"
    audio = body.get("generate_audio") is not False
    return round(tokens * USD_PER_MILLION_TOKENS[(audio, str(tier))] / 1e6, 9)


# The request fields a listed task shows: Ark's name -> ours (no prompt, no images: §7.7).
# The ratio is left out: whether a listed task shows ``adaptive`` as sent or the ratio it became is [UNKNOWN], and
# a wrong guess would hide the attempt's task.
_LISTED_FIELDS = {
    "resolution": "resolution",
    "duration": "duration",
    "seed": "seed",
    "generate_audio": "generate_audio",
    "camera_fixed": "camera_fixed",
    "service_tier": "service_tier",
}
