"""The documented example payloads (docs/providers.md §3-§6) through each adapter's parsers,
and each adapter's exact submit body. No network: adapters are sans-I/O."""

from __future__ import annotations

import pytest

from seedance_pipeline.core.request import GenerationRequest
from seedance_pipeline.providers import get_adapter
from seedance_pipeline.providers.base import ImageRefs, WireReply
from seedance_pipeline.providers.states import TaskState

REQ = GenerationRequest(
    prompt="The character slowly turns",
    image="https://example.com/portrait.jpg",
    duration=5,
    resolution="720p",
    aspect_ratio="16:9",
    seed=-1,
)
IMAGES = ImageRefs("https://example.com/portrait.jpg")


def reply(body, status=200, headers=None):
    return WireReply(status, body, headers or {})


# -- RunPod (docs/providers.md §3) ----------------------------------------------------------


def test_runpod_submit_body_is_input_envelope_with_explicit_audio():
    wire = get_adapter("runpod").build_submit(REQ, IMAGES, "16:9")
    assert (wire.method, wire.path) == ("POST", "/v2/seedance-v1-5-pro-i2v/run")
    assert wire.json == {
        "input": {
            "prompt": "The character slowly turns",
            "image": "https://example.com/portrait.jpg",
            "duration": 5,
            "resolution": "720p",
            "aspect_ratio": "16:9",
            "camera_fixed": False,
            "generate_audio": False,
            "seed": -1,
        }
    }


def test_runpod_runsync_with_wait():
    wire = get_adapter("runpod", use_runsync=True, runsync_wait_ms=300000).build_submit(REQ, IMAGES, "16:9")
    assert (wire.path, wire.params) == ("/v2/seedance-v1-5-pro-i2v/runsync", {"wait": "300000"})


def test_runpod_seed_example_completed():
    doc = {
        "id": "sync-a1b2c3d4-e5f6-7890-abcd-ef1234567890-u1",
        "status": "COMPLETED",
        "delayTime": 25,
        "executionTime": 65432,
        "output": {"video_url": "https://video.runpod.ai/abc123/output.mp4", "cost": 0.26},
    }
    snap = get_adapter("runpod").parse_poll(reply(doc))
    assert snap.state is TaskState.SUCCEEDED
    assert snap.output_url == "https://video.runpod.ai/abc123/output.mp4"
    assert snap.reported_cost_usd == 0.26
    assert snap.extra["executionTime"] == 65432


def test_runpod_runsync_not_final_is_a_task_to_poll():
    snap = get_adapter("runpod").parse_submit(reply({"id": "abc", "status": "IN_PROGRESS"}))
    assert (snap.task_id, snap.state) == ("abc", TaskState.RUNNING)


@pytest.mark.parametrize(
    "raw,state",
    [
        ("IN_QUEUE", "queued"),
        ("IN_PROGRESS", "running"),
        ("RUNNING", "running"),
        ("FAILED", "failed"),
        ("CANCELLED", "cancelled"),
        ("TIMED_OUT", "expired"),
        ("SOMETHING_NEW", "running"),
    ],
)
def test_runpod_status_words(raw, state):
    assert get_adapter("runpod").parse_poll(reply({"id": "x", "status": raw, "error": "e"})).state.value == state


def test_runpod_failed_embedded_upstream_message_and_moderation():
    err = (
        'Error submitting task: 400, {"code":400,"message":"The request failed because the input text may'
        ' contain sensitive information."}'
    )
    snap = get_adapter("runpod").parse_poll(reply({"id": "x", "status": "FAILED", "error": err}))
    assert snap.state is TaskState.FAILED
    assert snap.error == "The request failed because the input text may contain sensitive information."
    assert snap.moderation


def test_runpod_completed_without_url_is_a_failure():
    snap = get_adapter("runpod").parse_poll(reply({"id": "x", "status": "COMPLETED", "output": {}}))
    assert snap.state is TaskState.FAILED


# -- WaveSpeed (docs/providers.md §4) -------------------------------------------------------

WS_ENVELOPE = {
    "code": 200,
    "message": "success",
    "data": {
        "id": "pred-1",
        "model": "bytedance/seedance-v1.5-pro/image-to-video",
        "outputs": [],
        "urls": {"get": "https://api.wavespeed.ai/api/v3/predictions/pred-1/result"},
        "has_nsfw_contents": [],
        "status": "created",
        "created_at": "2023-04-01T12:34:56.789Z",
        "error": "",
        "timings": {"inference": 0},
    },
}


def test_wavespeed_submit_body_flat():
    wire = get_adapter("wavespeed").build_submit(REQ, IMAGES, "16:9")
    assert (wire.method, wire.path) == ("POST", "/api/v3/bytedance/seedance-v1.5-pro/image-to-video")
    assert wire.json == {
        "prompt": "The character slowly turns",
        "image": "https://example.com/portrait.jpg",
        "aspect_ratio": "16:9",
        "duration": 5,
        "resolution": "720p",
        "generate_audio": False,
        "camera_fixed": False,
        "seed": -1,
    }


def test_wavespeed_envelope_created_and_poll_url():
    snap = get_adapter("wavespeed").parse_submit(reply(WS_ENVELOPE))
    assert (snap.task_id, snap.state) == ("pred-1", TaskState.QUEUED)
    assert snap.poll_url == "https://api.wavespeed.ai/api/v3/predictions/pred-1/result"
    assert snap.error is None


def test_wavespeed_completed_and_failed():
    ad = get_adapter("wavespeed")
    done = {**WS_ENVELOPE, "data": {**WS_ENVELOPE["data"], "status": "completed", "outputs": ["https://cdn/x.mp4"]}}
    assert ad.parse_poll(reply(done)).output_url == "https://cdn/x.mp4"
    failed = {
        **WS_ENVELOPE,
        "data": {**WS_ENVELOPE["data"], "status": "failed", "error": "content flagged by moderation"},
    }
    snap = ad.parse_poll(reply(failed))
    assert snap.state is TaskState.FAILED and snap.moderation and snap.error == "content flagged by moderation"


def test_wavespeed_sync_timeout_carries_the_task_to_poll():
    body = {
        "code": 5004,
        "message": "Sync mode timed out",
        "data": {
            "id": "task-sync",
            "status": "processing",
            "code": 5004,
            "error": "Sync mode timed out",
            "urls": {"get": "https://api.wavespeed.ai/api/v3/predictions/task-sync/result"},
        },
    }
    snap = get_adapter("wavespeed", enable_sync_mode=True).parse_submit(reply(body, status=504))
    assert (snap.task_id, snap.state, snap.error) == ("task-sync", TaskState.RUNNING, None)


def test_wavespeed_error_reply_without_task_is_not_a_task():
    assert get_adapter("wavespeed").parse_submit(reply({"code": 401, "message": "Unauthorized"}, status=401)) is None


# -- JieKou / Novita (docs/providers.md §5) ------------------------------------

TASK_RESULT = {
    "extra": {
        "seed": "123",
        "debug_info": {"request_info": "", "submit_time_ms": "1", "execute_time_ms": "2", "complete_time_ms": "3"},
    },
    "task": {
        "task_id": "t-1",
        "status": "TASK_STATUS_SUCCEED",
        "reason": "",
        "task_type": "SEEDANCE",
        "eta": 0,
        "progress_percent": 100,
    },
    "images": [],
    "videos": [{"video_url": "https://cdn/v.mp4", "video_url_ttl": "3600", "video_type": "mp4"}],
    "audios": [],
}


@pytest.mark.parametrize("name", ["jiekou", "novita"])
def test_v3_submit_body_uses_ratio_and_explicit_fields(name):
    req = REQ.model_copy(update={"aspect_ratio": "adaptive", "service_tier": "flex", "execution_expires_after": 7200})
    wire = get_adapter(name).build_submit(req, ImageRefs("data:image/png;base64,AAAA"), "adaptive")
    assert (wire.method, wire.path) == ("POST", "/v3/async/seedance-v1.5-pro-i2v")
    assert wire.json == {
        "prompt": "The character slowly turns",
        "image": "data:image/png;base64,AAAA",
        "ratio": "adaptive",
        "duration": 5,
        "resolution": "720p",
        "fps": 24,
        "seed": -1,
        "camera_fixed": False,
        "generate_audio": False,
        "watermark": False,
        "service_tier": "flex",
        "execution_expires_after": 7200,
    }
    assert "aspect_ratio" not in wire.json


@pytest.mark.parametrize("name", ["jiekou", "novita"])
@pytest.mark.parametrize("field", ["task_id", "id"])
def test_v3_submit_accepts_task_id_or_id(name, field):
    assert get_adapter(name).parse_submit(reply({field: "abc"})).task_id == "abc"


@pytest.mark.parametrize("name", ["jiekou", "novita"])
def test_v3_task_result_example(name):
    ad = get_adapter(name)
    wire = ad.build_poll("t-1")
    assert (wire.path, wire.params) == ("/v3/async/task-result", {"task_id": "t-1"})
    snap = ad.parse_poll(reply(TASK_RESULT))
    assert snap.state is TaskState.SUCCEEDED
    assert snap.output_url == "https://cdn/v.mp4"
    assert snap.url_ttl_s == 3600.0  # sent as a string
    assert snap.extra["seed"] == "123"


@pytest.mark.parametrize("raw,state", [("TASK_STATUS_QUEUED", "queued"), ("TASK_STATUS_PROCESSING", "running")])
def test_v3_pending_states_with_eta(raw, state):
    doc = {
        **TASK_RESULT,
        "task": {**TASK_RESULT["task"], "status": raw, "eta": 42, "progress_percent": 30},
        "videos": [],
    }
    snap = get_adapter("novita").parse_poll(reply(doc))
    # "eta" is whole seconds: the task may be done up to a second sooner, which is when we ask again
    assert (snap.state.value, snap.eta_s, snap.progress) == (state, 41.0, 30.0)
    doc["task"]["eta"] = 1
    assert get_adapter("novita").parse_poll(reply(doc)).eta_s == 0.0


def test_v3_failed_reason_moderation_and_expired():
    ad = get_adapter("jiekou")
    failed = {
        **TASK_RESULT,
        "task": {**TASK_RESULT["task"], "status": "TASK_STATUS_FAILED", "reason": "ILLEGAL_PROMPT: prompt rejected"},
        "videos": [],
    }
    snap = ad.parse_poll(reply(failed))
    assert snap.state is TaskState.FAILED and snap.moderation and "ILLEGAL_PROMPT" in snap.error
    expired = {**failed, "task": {**failed["task"], "reason": "task expired after execution_expires_after"}}
    assert ad.parse_poll(reply(expired)).state is TaskState.EXPIRED


def test_v3_error_body():
    body = {"code": 400, "reason": "INVALID_REQUEST_BODY", "message": "duration out of range", "metadata": {}}
    assert get_adapter("novita").error_message(reply(body, 400)) == ("INVALID_REQUEST_BODY", "duration out of range")


# -- VibeDream (docs/providers.md §6) --------------------------------------------------------


def test_vibedream_submit_body_maps_adaptive_to_auto():
    req = REQ.model_copy(update={"aspect_ratio": "adaptive"})
    wire = get_adapter("vibedream").build_submit(req, IMAGES, "auto")
    assert (wire.method, wire.path) == ("POST", "/api/v1/models/seedance-1.5-pro-i2v/generate")
    assert wire.json["aspect_ratio"] == "auto" and wire.json["generate_audio"] is False


def test_vibedream_seed_examples():
    ad = get_adapter("vibedream")
    submit = {
        "id": "550e8400-e29b-41d4-a716-446655440000",
        "status": "processing",
        "statusUrl": "https://api.vibedream.ai/api/v1/predictions/550e8400-e29b-41d4-a716-446655440000",
        "estimatedTime": "60-120s",
        "costCents": 29,
        "createdAt": "2025-01-15T12:00:00.000Z",
    }
    snap = ad.parse_submit(reply(submit))
    assert (snap.state, snap.reported_cost_usd, snap.eta_s) == (TaskState.RUNNING, 0.29, 60.0)
    assert snap.poll_url == submit["statusUrl"]
    done = {
        "id": submit["id"],
        "modelId": "seedance-1.5-pro-i2v",
        "modelName": "Seedance 1.5 Pro Image to Video",
        "status": "completed",
        "outputs": ["https://assets.vibedream.ai/outputs/550e/1736942400000-0.mp4"],
        "error": None,
        "createdAt": "2025-01-15T12:00:00.000Z",
        "completedAt": "2025-01-15T12:00:30.000Z",
    }
    assert ad.parse_poll(reply(done)).output_url.endswith("-0.mp4")
    failed = {
        **done,
        "status": "failed",
        "outputs": None,
        "error": "Your request was flagged by content moderation. Please modify your prompt.",
    }
    snap = ad.parse_poll(reply(failed))
    assert snap.state is TaskState.FAILED and snap.moderation
