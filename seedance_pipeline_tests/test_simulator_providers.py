"""Each provider's wire protocol: submit -> poll -> download a real MP4, envelopes, auth, 400s."""

from __future__ import annotations

import base64
import io

import httpx
import pytest

from seedance_pipeline.simulator import ProviderSimConfig, SimConfig
from seedance_pipeline_tests.simulator_support import (
    KEY,
    PROVIDERS,
    SUBMIT_PATHS,
    fast_config,
    image_bytes,
    poll_path,
    poll_until_terminal,
    submit_body,
    task_id_of,
    video_url_of,
)


def probe(data: bytes) -> tuple[int, int, float, bool]:
    """(width, height, duration s, has audio) of an MP4, via PyAV."""
    av = pytest.importorskip("av")
    with av.open(io.BytesIO(data)) as container:
        v = container.streams.video[0]
        duration = float(container.duration / 1_000_000) if container.duration else 0.0
        return v.codec_context.width, v.codec_context.height, duration, bool(container.streams.audio)


def real_config(render_cache: str) -> SimConfig:
    cfg = fast_config(0.05)
    return cfg.model_copy(update={"render_cache_dir": render_cache})


# --- happy paths with the real renderer -------------------------------------------------------


def test_runpod_run_poll_download(make_server, client, render_cache):
    srv = make_server(real_config(render_cache), real_render=True)
    url = srv.put_asset("frame.png", image_bytes())
    r = client.post(srv.provider_url("runpod") + SUBMIT_PATHS["runpod"], json=submit_body("runpod", url))
    assert r.status_code == 200
    reply = r.json()
    assert set(reply) == {"id", "status"} and reply["status"] == "IN_QUEUE"
    assert reply["id"].endswith("-u1") and not reply["id"].startswith("sync-")
    job = poll_until_terminal(client, srv, "runpod", reply["id"])
    assert job["status"] == "COMPLETED"
    assert set(job) == {"id", "status", "delayTime", "executionTime", "output", "workerId"}
    assert isinstance(job["delayTime"], int) and isinstance(job["executionTime"], int)
    assert job["output"]["cost"] == pytest.approx(0.024 * 4)
    video = httpx.get(job["output"]["video_url"], trust_env=False)  # CDN URL: no auth needed
    assert video.status_code == 200 and video.headers["content-type"] == "video/mp4"
    assert video.content[4:8] == b"ftyp"
    # RunPod defaults: 16:9, generate_audio false
    assert probe(video.content)[:2] == (864, 496)
    assert probe(video.content)[3] is False


def test_wavespeed_submit_poll_download(make_server, client, render_cache):
    srv = make_server(real_config(render_cache), real_render=True)
    url = srv.put_asset("frame.png", image_bytes())
    r = client.post(
        srv.provider_url("wavespeed") + SUBMIT_PATHS["wavespeed"],
        json=submit_body("wavespeed", url, aspect_ratio="16:9"),
    )
    assert r.status_code == 200
    reply = r.json()
    assert reply["code"] == 200 and reply["message"] == "success"
    data = reply["data"]
    assert set(data) == {
        "id", "model", "outputs", "urls", "has_nsfw_contents", "status", "created_at", "error", "timings",
    }  # fmt: skip
    assert data["status"] == "created" and data["outputs"] == [] and data["error"] == ""
    assert data["model"] == "bytedance/seedance-v1.5-pro/image-to-video"
    assert data["timings"] == {"inference": 0}
    assert data["urls"]["get"] == f"{srv.base_url}/wavespeed/api/v3/predictions/{data['id']}/result"
    assert data["created_at"].endswith("Z")
    done = poll_until_terminal(client, srv, "wavespeed", data["id"])
    assert done["data"]["status"] == "completed" and len(done["data"]["outputs"]) == 1
    # the poll URL without /result answers too
    alt = client.get(srv.provider_url("wavespeed") + f"/api/v3/predictions/{data['id']}")
    assert alt.status_code == 200 and alt.json()["data"]["status"] == "completed"
    video = httpx.get(done["data"]["outputs"][0], trust_env=False)
    assert video.content[4:8] == b"ftyp"
    width, height, _, audio = probe(video.content)
    assert (width, height) == (864, 496) and audio is True  # WaveSpeed default: generate_audio true


@pytest.mark.parametrize("provider", ["jiekou", "novita"])
def test_v3async_submit_poll_download(make_server, client, render_cache, provider):
    srv = make_server(real_config(render_cache), real_render=True)
    url = srv.put_asset("frame.png", image_bytes())
    body = submit_body(provider, url, ratio="16:9", generate_audio=False, seed=7)
    r = client.post(srv.provider_url(provider) + SUBMIT_PATHS[provider], json=body)
    assert r.status_code == 200
    assert set(r.json()) == {"task_id"}
    task_id = r.json()["task_id"]
    result = poll_until_terminal(client, srv, provider, task_id)
    assert set(result) == {"extra", "task", "images", "videos", "audios"}
    assert result["extra"]["seed"] == "7"
    assert set(result["extra"]["debug_info"]) == {
        "request_info",
        "submit_time_ms",
        "execute_time_ms",
        "complete_time_ms",
    }
    task = result["task"]
    assert set(task) == {"task_id", "status", "reason", "task_type", "eta", "progress_percent"}
    assert task["status"] == "TASK_STATUS_SUCCEED" and task["task_id"] == task_id and task["reason"] == ""
    (video_entry,) = result["videos"]
    assert video_entry["video_type"] == "mp4"
    assert isinstance(video_entry["video_url_ttl"], str) and int(video_entry["video_url_ttl"]) > 0
    video = httpx.get(video_entry["video_url"], trust_env=False)
    assert video.content[4:8] == b"ftyp"
    assert probe(video.content)[:2] == (864, 496)
    assert probe(video.content)[3] is False


def test_vibedream_generate_poll_download(make_server, client, render_cache):
    srv = make_server(real_config(render_cache), real_render=True)
    url = srv.put_asset("frame.png", image_bytes())
    body = submit_body("vibedream", url, aspect_ratio="16:9", generate_audio=False, seed=-1)
    r = client.post(srv.provider_url("vibedream") + SUBMIT_PATHS["vibedream"], json=body)
    assert r.status_code == 200
    reply = r.json()
    assert set(reply) == {"id", "status", "statusUrl", "estimatedTime", "costCents", "createdAt"}
    assert reply["status"] == "processing"
    assert reply["statusUrl"] == f"{srv.base_url}/vibedream/api/v1/predictions/{reply['id']}"
    assert reply["costCents"] == 29  # the documented example: 4 s / 480p / 16:9 / silent
    assert reply["estimatedTime"].endswith("s") and "-" in reply["estimatedTime"]
    pred = client.get(reply["statusUrl"]).json()
    assert set(pred) == {"id", "modelId", "modelName", "status", "outputs", "error", "createdAt", "completedAt"}
    done = poll_until_terminal(client, srv, "vibedream", reply["id"])
    assert done["status"] == "completed" and done["error"] is None and done["completedAt"]
    assert done["modelId"] == "seedance-1.5-pro-i2v" and done["modelName"] == "Seedance 1.5 Pro Image to Video"
    video = httpx.get(done["outputs"][0], trust_env=False)
    assert video.content[4:8] == b"ftyp"


def test_same_seed_same_request_same_bytes(make_server, client):
    """Two fresh simulators, same config seed and request (seed -1 drawn from the seeded RNG).

    No render cache here, so both clips are really rendered.
    """
    videos, seeds = [], []
    for _ in range(2):
        srv = make_server(fast_config(0.05), real_render=True)
        url = srv.put_asset("frame.png", image_bytes())
        body = submit_body("jiekou", url, generate_audio=True)
        task_id = client.post(srv.provider_url("jiekou") + SUBMIT_PATHS["jiekou"], json=body).json()["task_id"]
        result = poll_until_terminal(client, srv, "jiekou", task_id)
        seeds.append(result["extra"]["seed"])
        videos.append(httpx.get(result["videos"][0]["video_url"], trust_env=False).content)
    assert seeds[0] == seeds[1] and int(seeds[0]) >= 0
    assert videos[0] == videos[1] and videos[0][4:8] == b"ftyp"
    # adaptive (the default ratio) on a 4:3 image -> 752x560, audio on by default
    width, height, duration, audio = probe(videos[0])
    assert (width, height, audio) == (752, 560, True)
    assert duration == pytest.approx(4.0, abs=0.1)


# --- pixel sizes, defaults ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("provider", "extra", "size"),
    [
        ("runpod", {}, (864, 496)),  # default 16:9
        ("runpod", {"aspect_ratio": "9:16"}, (496, 864)),
        ("wavespeed", {}, (496, 864)),  # no aspect_ratio: follows the (portrait) image
        ("jiekou", {}, (496, 864)),  # default adaptive
        ("novita", {"ratio": "21:9", "resolution": "1080p"}, (2206, 946)),
        ("vibedream", {"aspect_ratio": "auto"}, (496, 864)),
        ("vibedream", {"aspect_ratio": "1:1", "resolution": "720p"}, (960, 960)),
    ],
)
def test_pixel_size_and_defaults(make_server, client, provider, extra, size):
    srv = make_server()
    url = srv.put_asset("portrait.png", image_bytes(480, 800))
    r = client.post(srv.provider_url(provider) + SUBMIT_PATHS[provider], json=submit_body(provider, url, **extra))
    assert r.status_code == 200, r.text
    (task,) = srv.sim.tasks()
    assert (task["width"], task["height"]) == size
    assert task["duration_s"] == 4


@pytest.mark.parametrize(
    ("provider", "audio"),
    [("runpod", False), ("wavespeed", True), ("jiekou", True), ("novita", True), ("vibedream", False)],
)
def test_generate_audio_defaults(make_server, client, provider, audio):
    srv = make_server()
    url = srv.put_asset("frame.png", image_bytes())
    body = submit_body(provider, url, duration=None)  # duration absent -> 5
    assert client.post(srv.provider_url(provider) + SUBMIT_PATHS[provider], json=body).status_code == 200
    (task,) = srv.sim.tasks()
    assert task["audio"] is audio and task["duration_s"] == 5


# --- auth ----------------------------------------------------------------------------------------


def _assert_error_shape(provider: str, status: int, body: dict) -> None:
    if provider in ("runpod", "vibedream"):
        assert set(body) == {"error"} and isinstance(body["error"], str) and body["error"]
    elif provider == "wavespeed":
        assert body["code"] == status and isinstance(body["message"], str)
    elif provider == "modelark":  # {"error": {code, message, param, type}} (docs/providers.md §7.4)
        assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "param", "type"}
        assert body["error"]["code"] and "Request id: " in body["error"]["message"]
    else:
        assert set(body) == {"code", "reason", "message", "metadata"}
        assert body["code"] == status and body["metadata"] == {}


@pytest.mark.parametrize("provider", PROVIDERS)
def test_auth_missing_or_wrong_key_is_401(make_server, provider):
    cfg = fast_config().model_copy(update={"api_keys": [KEY]})
    srv = make_server(cfg)
    url = srv.put_asset("frame.png", image_bytes())
    submit = srv.provider_url(provider) + SUBMIT_PATHS[provider]
    body = submit_body(provider, url)
    with httpx.Client(trust_env=False) as anon:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": KEY}, {"Authorization": "Bearer"}):
            r = anon.post(submit, json=body, headers=headers)
            assert r.status_code == 401, (headers, r.text)
            _assert_error_shape(provider, 401, r.json())
        r = anon.get(srv.provider_url(provider) + poll_path(provider, "x"))
        assert r.status_code == 401
        _assert_error_shape(provider, 401, r.json())
        ok = anon.post(submit, json=body, headers={"Authorization": f"Bearer {KEY}"})
        assert ok.status_code == 200
    assert srv.sim.stats()["requests"][provider]["submit"] == 5


# --- validation ---------------------------------------------------------------------------------

BAD_REQUESTS = [
    ("runpod", {"resolution": "1080p"}, None),
    ("runpod", {"aspect_ratio": "adaptive"}, None),
    ("runpod", {"duration": 3}, None),
    ("runpod", {"duration": 5.5}, None),
    ("runpod", {"image": "data:image/png;base64,AAAA"}, None),
    ("runpod", {"image": "ftp://example.com/a.png"}, None),
    ("runpod", {"prompt": None}, None),
    ("wavespeed", {"aspect_ratio": "auto"}, None),
    ("wavespeed", {"resolution": "1080p"}, None),
    ("wavespeed", {"seed": 2147483648}, None),
    ("wavespeed", {"image": "data:image/png;base64,AAAA"}, None),
    ("wavespeed", {"generate_audio": "yes"}, None),
    ("jiekou", {"fps": 30}, "INVALID_REQUEST_BODY"),
    ("jiekou", {"ratio": "auto"}, "INVALID_REQUEST_BODY"),
    ("jiekou", {"seed": 4294967296}, "INVALID_REQUEST_BODY"),
    ("novita", {"execution_expires_after": 100}, "INVALID_REQUEST_BODY"),
    ("novita", {"service_tier": "batch"}, "INVALID_REQUEST_BODY"),
    ("novita", {"duration": 13}, "INVALID_REQUEST_BODY"),
    ("vibedream", {"seed": 1001}, None),
    ("vibedream", {"aspect_ratio": "adaptive"}, None),
    ("vibedream", {"image": "data:image/png;base64,AAAA"}, None),
]


@pytest.mark.parametrize(("provider", "overrides", "reason"), BAD_REQUESTS)
def test_validation_400(make_server, client, provider, overrides, reason):
    srv = make_server()
    url = srv.put_asset("frame.png", image_bytes())
    r = client.post(srv.provider_url(provider) + SUBMIT_PATHS[provider], json=submit_body(provider, url, **overrides))
    assert r.status_code == 400, r.text
    body = r.json()
    _assert_error_shape(provider, 400, body)
    if reason:
        assert body["reason"] == reason
    field = next(iter(overrides))
    assert field in str(body)  # the message names the field
    assert srv.sim.tasks() == []
    assert srv.sim.submits_by_key() == {}


IMAGE_PROBLEMS = [
    # (image: (w, h, fmt) or a URL suffix, novita reason)
    ((200, 200, "PNG"), "INVALID_IMAGE_SIZE"),  # side < 300
    ((1500, 400, "PNG"), "INVALID_IMAGE_SIZE"),  # aspect 3.75 > 2.5
    ((300, 900, "PNG"), "INVALID_IMAGE_SIZE"),  # aspect 0.33 < 0.4
    ((300, 400, "PNG"), "INVALID_IMAGE_SIZE"),  # sides are an open range: exactly 300 is refused
    ((1000, 400, "PNG"), "INVALID_IMAGE_SIZE"),  # so is an aspect of exactly 2.5
    ((640, 480, "ICO"), "INVALID_IMAGE_FORMAT"),
    ("missing", "INVALID_REQUEST_BODY"),  # unreachable URL (404)
]


@pytest.mark.parametrize(("image", "reason"), IMAGE_PROBLEMS)
@pytest.mark.parametrize("provider", PROVIDERS)
def test_image_rejections(make_server, client, provider, image, reason):
    srv = make_server()
    if image == "missing":
        url = srv.base_url + "/_sim/assets/does-not-exist.png"
    else:
        w, h, fmt = image
        url = srv.put_asset(f"img.{fmt.lower()}", image_bytes(w, h, fmt))
    r = client.post(srv.provider_url(provider) + SUBMIT_PATHS[provider], json=submit_body(provider, url))
    assert r.status_code == 400, r.text
    body = r.json()
    _assert_error_shape(provider, 400, body)
    if provider in ("jiekou", "novita"):
        assert body["reason"] == reason
    if provider == "runpod":  # upstream JSON embedded in the error string (docs/providers.md §3.4)
        assert body["error"].startswith("Error submitting task: 400, {")
    assert srv.sim.tasks() == []


def test_image_format_lists_differ(make_server, client):
    """BMP is on ByteDance's list (JieKou, Novita, RunPod, WaveSpeed) but not VibeDream's."""
    srv = make_server()
    url = srv.put_asset("frame.bmp", image_bytes(640, 480, "BMP"))
    for provider in ("runpod", "wavespeed", "jiekou", "novita"):
        r = client.post(srv.provider_url(provider) + SUBMIT_PATHS[provider], json=submit_body(provider, url))
        assert r.status_code == 200, (provider, r.text)
    r = client.post(srv.provider_url("vibedream") + SUBMIT_PATHS["vibedream"], json=submit_body("vibedream", url))
    assert r.status_code == 400 and "bmp" in r.json()["error"]


@pytest.mark.parametrize("provider", ["jiekou", "novita"])
def test_v3async_accepts_data_uri(make_server, client, provider):
    srv = make_server()
    data_uri = "data:image/png;base64," + base64.b64encode(image_bytes()).decode()
    r = client.post(srv.provider_url(provider) + SUBMIT_PATHS[provider], json=submit_body(provider, data_uri))
    assert r.status_code == 200, r.text
    result = poll_until_terminal(client, srv, provider, task_id_of(provider, r.json()))
    assert result["task"]["status"] == "TASK_STATUS_SUCCEED"
    assert httpx.get(video_url_of(provider, result), trust_env=False).content[4:8] == b"ftyp"


@pytest.mark.parametrize("provider", PROVIDERS)
def test_unknown_task_and_unknown_path(make_server, client, provider):
    srv = make_server()
    r = client.get(srv.provider_url(provider) + poll_path(provider, "no-such-task"))
    assert r.status_code == 404
    _assert_error_shape(provider, 404, r.json())
    if provider in ("jiekou", "novita"):
        assert r.json()["reason"] == "TASK_NOT_FOUND"
    r = client.get(srv.provider_url(provider) + "/no/such/path")
    assert r.status_code == 404
    _assert_error_shape(provider, 404, r.json())
    assert srv.sim.stats()["requests"][provider] == {
        "submit": 0,
        "status": 1,
        "download": 0,
        "cancel": 0,
        "list": 0,
        "other": 1,
    }


def test_runpod_unknown_top_level_keys_are_discarded(make_server, client):
    srv = make_server()
    url = srv.put_asset("frame.png", image_bytes())
    submit = srv.provider_url("runpod") + SUBMIT_PATHS["runpod"]
    assert client.post(submit, json={**submit_body("runpod", url), "junk": 1}).status_code == 200
    assert client.post(submit, json=submit_body("runpod", url)).status_code == 200
    assert list(srv.sim.submits_by_key().values()) == [2]


def test_novita_submit_id_field_is_configurable(make_server, client):
    cfg = fast_config()
    cfg.providers["novita"] = ProviderSimConfig(latency_min_s=0.05, latency_max_s=0.05, submit_id_field="id")
    srv = make_server(cfg)
    url = srv.put_asset("frame.png", image_bytes())
    r = client.post(srv.provider_url("novita") + SUBMIT_PATHS["novita"], json=submit_body("novita", url))
    assert set(r.json()) == {"id"}
    result = poll_until_terminal(client, srv, "novita", r.json()["id"])
    assert result["task"]["task_id"] == r.json()["id"]
    # JieKou ignores the knob
    cfg.providers["jiekou"] = cfg.providers["novita"]
    srv.configure(cfg)
    r = client.post(srv.provider_url("jiekou") + SUBMIT_PATHS["jiekou"], json=submit_body("jiekou", url))
    assert set(r.json()) == {"task_id"}
