"""Shared helpers for the simulator tests (no tests here): images, servers, bounded polling.

Every test starts its own ``SimulatorServer`` on 127.0.0.1 port 0, so the files are parallel-safe.
"""

from __future__ import annotations

import hashlib
import io
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from PIL import Image

from seedance_pipeline.simulator import PROVIDERS, FaultRule, ProviderSimConfig, SimConfig
from seedance_pipeline.simulator.server import SimulatorServer

KEY = "test-key"
AUTH = {"Authorization": f"Bearer {KEY}"}

# (path below the provider base URL, how a submit body is built, poll path for an id)
SUBMIT_PATHS = {
    "runpod": "/v2/seedance-v1-5-pro-i2v/run",
    "wavespeed": "/api/v3/bytedance/seedance-v1.5-pro/image-to-video",
    "jiekou": "/v3/async/seedance-v1.5-pro-i2v",
    "novita": "/v3/async/seedance-v1.5-pro-i2v",
    "vibedream": "/api/v1/models/seedance-1.5-pro-i2v/generate",
    "modelark": "/contents/generations/tasks",
}


def poll_path(provider: str, task_id: str) -> str:
    return {
        "runpod": f"/v2/seedance-v1-5-pro-i2v/status/{task_id}",
        "wavespeed": f"/api/v3/predictions/{task_id}/result",
        "jiekou": f"/v3/async/task-result?task_id={task_id}",
        "novita": f"/v3/async/task-result?task_id={task_id}",
        "vibedream": f"/api/v1/predictions/{task_id}",
        "modelark": f"/contents/generations/tasks/{task_id}",
    }[provider]


def png(width: int = 640, height: int = 480, fmt: str = "PNG") -> bytes:
    im = Image.new("RGB", (width, height))
    im.putdata([((x * 255) // width, (y * 255) // height, 128) for y in range(height) for x in range(width)])
    buf = io.BytesIO()
    im.save(buf, fmt)
    return buf.getvalue()


_IMAGE_CACHE: dict[tuple, bytes] = {}


def image_bytes(width: int = 640, height: int = 480, fmt: str = "PNG") -> bytes:
    key = (width, height, fmt)
    if key not in _IMAGE_CACHE:
        _IMAGE_CACHE[key] = png(width, height, fmt)
    return _IMAGE_CACHE[key]


def submit_body(provider: str, image_url: str, **overrides: Any) -> dict[str, Any]:
    """A minimal 480p / 4 s request in the provider's own vocabulary."""
    fields: dict[str, Any] = {
        "prompt": "a slow pan over a gradient",
        "image": image_url,
        "resolution": "480p",
        "duration": 4,
    }
    fields.update(overrides)
    fields = {k: v for k, v in fields.items() if v is not None}
    if provider == "modelark":  # content[]: the prompt and the images (with roles) as items
        content: list[dict[str, Any]] = []
        if "prompt" in fields:
            content.append({"type": "text", "text": fields.pop("prompt")})
        for key, role in (("image", "first_frame"), ("last_image", "last_frame")):
            if key in fields:
                content.append({"type": "image_url", "image_url": {"url": fields.pop(key)}, "role": role})
        return {"model": "seedance-1-5-pro-251215", "content": content, **fields}
    return {"input": fields} if provider == "runpod" else fields


def task_id_of(provider: str, reply: dict[str, Any]) -> str:
    if provider == "wavespeed":
        return reply["data"]["id"]
    if provider in ("jiekou", "novita"):
        return reply.get("task_id") or reply["id"]
    return reply["id"]


def status_of(provider: str, reply: dict[str, Any]) -> str:
    if provider == "wavespeed":
        return reply["data"]["status"]
    if provider in ("jiekou", "novita"):
        return reply["task"]["status"]
    return reply["status"]


TERMINAL = {
    "runpod": {"COMPLETED", "FAILED", "CANCELLED", "TIMED_OUT"},
    "wavespeed": {"completed", "failed"},
    "jiekou": {"TASK_STATUS_SUCCEED", "TASK_STATUS_FAILED"},
    "novita": {"TASK_STATUS_SUCCEED", "TASK_STATUS_FAILED"},
    "vibedream": {"completed", "failed"},
    "modelark": {"succeeded", "failed", "expired", "cancelled"},
}


def video_url_of(provider: str, reply: dict[str, Any]) -> str:
    if provider == "runpod":
        return reply["output"]["video_url"]
    if provider == "wavespeed":
        return reply["data"]["outputs"][0]
    if provider in ("jiekou", "novita"):
        return reply["videos"][0]["video_url"]
    if provider == "modelark":
        return reply["content"]["video_url"]
    return reply["outputs"][0]


def wait_for(
    fn: Callable[[], Any], pred: Callable[[Any], bool], timeout_s: float = 15.0, interval_s: float = 0.02
) -> Any:
    """Call fn until pred(result) holds; bounded. Returns the last result."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = fn()
        if pred(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s} s; last value: {value!r}")
        time.sleep(interval_s)


def poll_until_terminal(
    client: httpx.Client, srv: SimulatorServer, provider: str, task_id: str, timeout_s: float = 20.0
) -> dict:
    url = srv.provider_url(provider) + poll_path(provider, task_id)

    def get() -> dict:
        r = client.get(url)
        assert r.status_code == 200, r.text
        return r.json()

    return wait_for(get, lambda body: status_of(provider, body) in TERMINAL[provider], timeout_s)


# What a 4 s / 480p / silent clip from a 16:9 frame costs (prices.yaml), as test_contract.py and
# test_cli_generate.py expect it.
# RunPod $0.024/s; WaveSpeed $0.012/s; JieKou/Novita/ModelArk ByteDance's silent online rate, 864*496*97/1024
# tokens (24·d + 1 frames, docs/providers.md §2.4) at $1.2/M; VibeDream scaled from its one documented price, 29 cents.
ESTIMATED_USD = {
    "runpod": 0.096,
    "wavespeed": 0.048,
    "jiekou": 0.0487134,
    "novita": 0.0487134,
    "vibedream": 0.29,
    "modelark": 0.0487134,
}
# RunPod (output.cost), VibeDream (costCents at submit) and ModelArk (usage.completion_tokens: the simulator counts
# 864 * 496 * (24 * 4 + 1) // 1024 = 40594 tokens, at $1.2 per million) report a charge.
REPORTED_USD = {
    "runpod": 0.096,
    "wavespeed": None,
    "jiekou": None,
    "novita": None,
    "vibedream": 0.29,
    "modelark": 0.0487128,
}


def fake_render(
    image: bytes, width: int, height: int, duration_s: int, audio: bool, seed: int, cache_dir=None, **_content: Any
) -> bytes:
    """A stand-in for render_clip in protocol-shape tests: an ftyp box plus a deterministic payload."""
    digest = hashlib.sha256(image + f"{width}x{height}|{duration_s}|{audio}|{seed}".encode()).digest()
    return b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2" + digest * 64


def fast_config(latency_s: float = 0.05, faults: list[FaultRule] | None = None, **provider_kw: Any) -> SimConfig:
    cfg = ProviderSimConfig(latency_min_s=latency_s, latency_max_s=latency_s, **provider_kw)
    return SimConfig(providers=dict.fromkeys(PROVIDERS, cfg), faults=faults or [])


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(headers=AUTH, trust_env=False, timeout=30) as c:
        yield c


@pytest.fixture(scope="session")
def render_cache(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(tmp_path_factory.mktemp("render-cache"))


@pytest.fixture
def make_server() -> Iterator[Callable[..., SimulatorServer]]:
    """make_server(config, real_render=False) -> a started server, stopped after the test."""
    servers: list[SimulatorServer] = []

    def make(config: SimConfig | None = None, *, real_render: bool = False) -> SimulatorServer:
        srv = SimulatorServer(config or fast_config(), render_fn=None if real_render else fake_render)
        servers.append(srv)
        return srv

    yield make
    for srv in servers:
        srv.stop()
