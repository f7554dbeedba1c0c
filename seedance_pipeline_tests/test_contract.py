"""The provider contract: our real client (prepare + ProviderClient + generate_clip) against the simulator.

Every case runs for each of the six providers over real loopback HTTP, one ``SimulatorServer`` per
test. URL-only providers (RunPod, WaveSpeed, VibeDream) get the first frame as an http URL hosted by
the simulator (``put_asset``); JieKou, Novita and ModelArk get a local file, which goes out as a data: URI.
"Did the client wait?" is answered by an injected ``sleep`` that records the delays it is asked for
(and sleeps at most ``SLEEP_CAP_S`` so the suite stays fast); "how many requests?" by the simulator's
own counters and its record of the submit bodies it received.

Submit-once, as the client sees it: a POST is retried only when it provably was not taken (429/503
answers, a refused connection); a connection that breaks after the POST was written is
``AcceptanceUnknown`` whether the simulator processed it (drop_after) or not (drop_before), because
from the client's side the two are the same reset.
"""

from __future__ import annotations

import asyncio
import io
import random
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import fsspec
import pytest
from PIL import Image

from seedance_pipeline.clip.generate import ClipResult, generate_clip
from seedance_pipeline.clip.prepare import PreparedRequest, build_request, prepare
from seedance_pipeline.clip.probe import probe_video
from seedance_pipeline.core.errors import AcceptanceUnknown, DownloadFailed, InvalidRequest, TaskFailed
from seedance_pipeline.core.mp4 import looks_like_mp4
from seedance_pipeline.providers import PROVIDERS, get_adapter  # the contract runs for every registered adapter
from seedance_pipeline.providers.base import ProviderAdapter
from seedance_pipeline.providers.engine import ClientSettings, ProviderClient
from seedance_pipeline.simulator import outcomes as sim_outcomes
from seedance_pipeline.simulator import vibedream as sim_vibedream
from seedance_pipeline.simulator.config import FaultRule, ProviderSimConfig, SimConfig
from seedance_pipeline.simulator.server import SimulatorServer
from seedance_pipeline.simulator.state import submit_key
from seedance_pipeline_tests.simulator_support import ESTIMATED_USD, REPORTED_USD

URL_ONLY = frozenset({"runpod", "wavespeed", "vibedream"})
LATENCY_S = 0.1  # simulated generation time per task
SLEEP_CAP_S = 0.3  # the recording sleep really waits at most this long
API_KEY = "sk-contract-0123456789abcdef"  # long enough that redaction never touches ordinary words
PROMPT = "a calm lake at dawn, slow pan"
SEED = 7  # within every provider's range (VibeDream: -1..1000)

# What a 4 s 480p silent clip from an 800x450 (16:9) frame is estimated to cost (prices.yaml):
# Each provider's documented seed maximum (docs/providers.md §2.8).
SEED_MAX = {
    "runpod": 4294967295,
    "wavespeed": 2147483647,
    "jiekou": 4294967295,
    "novita": 4294967295,
    "vibedream": 1000,
    "modelark": 4294967295,
}


def png(size: tuple[int, int] = (800, 450), color: tuple[int, int, int] = (40, 120, 200)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return buf.getvalue()


FRAME = png()


def expected_wire_body(provider: str, image: str) -> dict[str, Any]:
    """The exact submit body each provider must receive (images as the simulator records them)."""
    common = {
        "prompt": PROMPT,
        "image": image,
        "duration": 4,
        "resolution": "480p",
        "seed": SEED,
        "camera_fixed": False,
        "generate_audio": False,
    }
    if provider == "runpod":  # {"input": {...}}, no adaptive: the nearest explicit ratio (docs/providers.md §3.2)
        return {"input": {**common, "aspect_ratio": "16:9"}}
    if provider == "wavespeed":  # flat, no adaptive/auto in the parameter table (docs/providers.md §4.2)
        return {**common, "aspect_ratio": "16:9"}
    if provider in ("jiekou", "novita"):  # `ratio`, `adaptive`, fps 24 and the extras explicit (docs/providers.md §5.2)
        return {**common, "ratio": "adaptive", "fps": 24, "watermark": False, "service_tier": "default"}
    if provider == "modelark":  # content[] with roles, every option explicit (docs/providers.md §7.2)
        return {
            "model": "seedance-1-5-pro-251215",
            "content": [
                {"type": "text", "text": PROMPT},
                {"type": "image_url", "image_url": {"url": image}, "role": "first_frame"},
            ],
            "ratio": "adaptive",
            **{k: common[k] for k in ("resolution", "duration", "seed", "camera_fixed", "generate_audio")},
            "watermark": False,
            "return_last_frame": True,
            "service_tier": "default",
            "execution_expires_after": 172800,
        }
    return {**common, "aspect_ratio": "auto"}  # VibeDream calls adaptive "auto" (docs/providers.md §6.2)


def sim_config(*faults: FaultRule, **provider_fields: Any) -> SimConfig:
    timing = ProviderSimConfig(**{"latency_min_s": LATENCY_S, "latency_max_s": LATENCY_S, **provider_fields})
    # Only our key is accepted: every request must carry "Authorization: Bearer <API_KEY>".
    return SimConfig(providers={p: timing for p in PROVIDERS}, faults=list(faults), api_keys=[API_KEY])


def settings(**overrides: Any) -> ClientSettings:
    base: dict[str, Any] = dict(
        expected_latency_s=LATENCY_S * 1.5,
        min_poll_interval_s=0.05,
        max_poll_interval_s=0.5,
        backoff_base_s=0.02,
        backoff_max_s=0.2,
        max_retries=3,
        connect_timeout_s=2.0,
        read_timeout_s=2.0,
        write_timeout_s=2.0,
        submit_read_timeout_s=5.0,
    )
    base.update(overrides)
    return ClientSettings(**base)


class RecordingRandom(random.Random):
    """The engine's jitter source, recording each backoff draw (bounds and value)."""

    def __init__(self) -> None:
        super().__init__(1234)
        self.draws: list[tuple[float, float, float]] = []

    def uniform(self, a: float, b: float) -> float:
        value = super().uniform(a, b)
        self.draws.append((a, b, value))
        return value


class Contract:
    """One provider, one simulator, one destination folder: prepare and run clips with our real client."""

    def __init__(self, server: SimulatorServer, provider: str, tmp_path: Path):
        self.server, self.provider, self.tmp_path = server, provider, tmp_path
        self.out_dir = tmp_path / "out"
        self.delays: list[float] = []
        self.rng = RecordingRandom()

    # -- inputs ---------------------------------------------------------------------------------
    def image_ref(self, data: bytes = FRAME, name: str = "frame.png") -> str:
        if self.provider in URL_ONLY:
            return self.server.put_asset(name, data)
        path = self.tmp_path / name
        path.write_bytes(data)
        return str(path)

    def prepare(
        self, adapter: ProviderAdapter | None = None, *, image: str | None = None, **fields: Any
    ) -> PreparedRequest:
        req = build_request(
            **{
                "prompt": PROMPT,
                "image": image or self.image_ref(),
                "duration": 4,
                "resolution": "480p",
                "seed": SEED,
                **fields,
            }
        )
        return prepare(adapter or get_adapter(self.provider), req)

    # -- running --------------------------------------------------------------------------------
    async def _sleep(self, delay: float) -> None:
        self.delays.append(delay)
        await asyncio.sleep(min(delay, SLEEP_CAP_S))

    def client(self, adapter: ProviderAdapter | None = None, **overrides: Any) -> ProviderClient:
        return ProviderClient(
            adapter or get_adapter(self.provider),
            API_KEY,
            base_url=self.server.provider_url(self.provider),
            settings=settings(**overrides),
            sleep=self._sleep,
            rng=self.rng,
        )

    def dest(self, name: str = "clip.mp4") -> str:
        return str(self.out_dir / name)

    def run(
        self, prepared: PreparedRequest | None = None, *, adapter: ProviderAdapter | None = None, **overrides: Any
    ) -> ClipResult:
        prepared = prepared or self.prepare(adapter)

        async def go() -> ClipResult:
            async with self.client(adapter, **overrides) as client:
                return await generate_clip(client, prepared, fsspec.filesystem("file"), self.dest())

        return asyncio.run(go())

    def run_fails(self, exc_type: type[Exception], **kw: Any) -> Any:
        with pytest.raises(exc_type) as info:
            self.run(**kw)
        return info.value

    # -- what the simulator saw -----------------------------------------------------------------
    def requests(self) -> dict[str, int]:
        return self.server.sim.stats()["requests"][self.provider]

    def tasks(self) -> list[dict[str, Any]]:
        return [t for t in self.server.sim.tasks() if t["provider"] == self.provider]

    def fault_applied(self, index: int = 0) -> int:
        return self.server.sim.stats()["faults"][index]["applied"]

    def submit_key_for(self, prepared: PreparedRequest) -> str:
        """The simulator's key for our body: images replaced by the sha256 of their bytes."""
        body = prepared.wire.json
        assert body is not None
        shown = f"sha256:{prepared.image_sha256}"
        if self.provider == "runpod":
            return submit_key({**body, "input": {**body["input"], "image": shown}})
        if self.provider == "modelark":
            content = [{**i, "image_url": {"url": shown}} if i["type"] == "image_url" else i for i in body["content"]]
            return submit_key({**body, "content": content})
        return submit_key({**body, "image": shown})

    def stored_files(self) -> list[str]:
        return sorted(p.name for p in self.out_dir.iterdir()) if self.out_dir.exists() else []


@pytest.fixture(scope="session")
def render_cache(tmp_path_factory) -> str:
    """The simulator's own render cache, shared by this worker's tests: same frame, seed, size -> same MP4."""
    return str(tmp_path_factory.mktemp("renders"))


@pytest.fixture
def make_contract(tmp_path, render_cache) -> Callable[..., Contract]:
    servers: list[SimulatorServer] = []

    def make(provider: str, config: SimConfig | None = None) -> Contract:
        config = (config or sim_config()).model_copy(update={"render_cache_dir": render_cache})
        server = SimulatorServer(config)
        servers.append(server)
        return Contract(server, provider, tmp_path)

    yield make
    for server in servers:
        server.stop()


def assert_stored_mp4(c: Contract, result: ClipResult) -> None:
    assert result.output == c.dest() and c.stored_files() == ["clip.mp4"]  # no .part-* left behind
    with fsspec.open(result.output, "rb") as fh:
        data = fh.read()
    assert looks_like_mp4(data[:12]) and len(data) == result.size_bytes
    probe = probe_video(data)
    assert (probe.width, probe.height, probe.fps) == (864, 496, 24) and probe.decoded_to_end
    assert probe.duration_s == pytest.approx(4, abs=0.1) and not probe.has_audio


# --- success: the MP4, the result, the exact wire body ------------------------------------------


@pytest.mark.parametrize("provider", PROVIDERS)
def test_success_stores_the_mp4_and_sends_the_documented_body(make_contract, provider):
    c = make_contract(provider)
    prepared = c.prepare()
    started = time.monotonic()
    result = c.run(prepared)
    elapsed_s = time.monotonic() - started

    assert_stored_mp4(c, result)
    [task] = c.tasks()
    assert result.provider == provider and result.status == "succeeded" and result.task_id == task["id"]
    assert result.estimated_cost_usd == pytest.approx(ESTIMATED_USD[provider], rel=1e-3)
    if REPORTED_USD[provider] is None:
        assert result.reported_cost_usd is None
    else:
        assert result.reported_cost_usd == pytest.approx(REPORTED_USD[provider])
    assert result.source_url and result.source_url.startswith(c.server.provider_url(provider) + "/outputs/")
    assert result.fingerprint == prepared.fingerprint

    [submit] = c.server.sim.submits()
    assert submit["accepted"] and submit["task_id"] == task["id"]
    assert submit["body"] == expected_wire_body(provider, f"sha256:{prepared.image_sha256}")
    assert c.server.sim.submits_by_key(provider=provider) == {c.submit_key_for(prepared): 1}
    # The simulated model made what we asked for.
    assert {k: task[k] for k in ("width", "height", "duration_s", "audio", "seed", "resolution", "ratio")} == {
        "width": 864,
        "height": 496,
        "duration_s": 4,
        "audio": False,
        "seed": SEED,
        "resolution": "480p",
        "ratio": "16:9",
    }
    counts = c.requests()
    assert counts["submit"] == 1 and counts["download"] == 1 and counts["status"] >= 1
    # Paced, not a storm: polls are at least min_poll_interval apart, however long the render took under load.
    assert counts["status"] <= 2 + elapsed_s / settings().min_poll_interval_s
    assert counts["cancel"] == counts["other"] == 0


# --- status GETs: 429 (with and without Retry-After), 5xx, read timeouts --------------------------


@pytest.mark.parametrize("provider", PROVIDERS)
def test_status_429_with_retry_after_waits_at_least_that_long(make_contract, provider):
    rule = FaultRule(provider=provider, endpoint="status", kind="http_429", times=1, retry_after="3")
    c = make_contract(provider, sim_config(rule))
    result = c.run()
    assert_stored_mp4(c, result)
    assert c.fault_applied() == 1
    assert max(c.delays) >= 3.0 and 3.0 in c.delays  # asked to sleep exactly the Retry-After
    assert c.requests()["status"] >= 2  # the 429, then at least one answered poll
    assert c.requests()["submit"] == 1 and len(c.tasks()) == 1


@pytest.mark.parametrize("provider", PROVIDERS)
def test_status_429_without_retry_after_backs_off(make_contract, provider):
    rule = FaultRule(provider=provider, endpoint="status", kind="http_429", times=1)
    c = make_contract(provider, sim_config(rule))
    result = c.run()
    assert_stored_mp4(c, result)
    assert c.fault_applied() == 1 and c.requests()["status"] >= 2
    # One jittered backoff was drawn (full jitter over [0, base * 2**0]) and slept.
    [(low, high, value)] = c.rng.draws
    assert (low, high) == (0, settings().backoff_base_s) and value in c.delays


@pytest.mark.parametrize("provider", PROVIDERS)
def test_status_500_and_503_are_retried(make_contract, provider):
    faults = [
        FaultRule(provider=provider, endpoint="status", kind="http_status", status=500, times=1),
        FaultRule(provider=provider, endpoint="status", kind="http_status", status=503, times=1),
    ]
    c = make_contract(provider, sim_config(*faults))
    result = c.run()
    assert_stored_mp4(c, result)
    assert c.fault_applied(0) == c.fault_applied(1) == 1 and c.requests()["status"] >= 3
    # Two backoffs within one GET's retry loop, full jitter with a doubling bound.
    assert [high for _, high, _ in c.rng.draws] == [settings().backoff_base_s, 2 * settings().backoff_base_s]
    assert all(value in c.delays for _, _, value in c.rng.draws)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_status_answer_slower_than_the_read_timeout_is_retried(make_contract, provider):
    rule = FaultRule(provider=provider, endpoint="status", kind="delay", delay_s=0.6, times=1)
    c = make_contract(provider, sim_config(rule))
    result = c.run(read_timeout_s=0.3)
    assert_stored_mp4(c, result)
    assert c.fault_applied() == 1 and c.requests()["status"] >= 2
    assert c.rng.draws  # the timed-out GET was retried after a backoff


@pytest.mark.parametrize("provider", PROVIDERS)
def test_status_connection_dropped_before_or_after_the_answer_is_retried(make_contract, provider):
    faults = [
        FaultRule(provider=provider, endpoint="status", kind="drop_before", times=1),
        FaultRule(provider=provider, endpoint="status", kind="drop_after", times=1),
    ]
    c = make_contract(provider, sim_config(*faults))
    result = c.run()
    assert_stored_mp4(c, result)
    assert c.fault_applied(0) == c.fault_applied(1) == 1 and c.requests()["status"] >= 3
    assert len(c.rng.draws) >= 2 and c.requests()["submit"] == 1  # GETs are retried, the POST never


# --- the submit POST: retried only when the provider says it did not take it ---------------------


@pytest.mark.parametrize("provider", PROVIDERS)
def test_submit_429_with_retry_after_is_retried_after_that_delay_and_creates_one_task(make_contract, provider):
    rule = FaultRule(provider=provider, endpoint="submit", kind="http_429", times=1, retry_after="2")
    c = make_contract(provider, sim_config(rule))
    prepared = c.prepare()
    result = c.run(prepared)
    assert_stored_mp4(c, result)
    assert c.delays[0] == 2.0  # the first sleep is the Retry-After, before the second POST
    assert c.requests()["submit"] == 2 and len(c.tasks()) == 1
    assert c.server.sim.submits_by_key(provider=provider) == {c.submit_key_for(prepared): 1}


@pytest.mark.parametrize("provider", PROVIDERS)
def test_submit_dropped_after_acceptance_is_never_resubmitted(make_contract, provider):
    """The provider created the task, then the connection died: exactly one task, no second POST."""
    rule = FaultRule(provider=provider, endpoint="submit", kind="drop_after", times=1)
    c = make_contract(provider, sim_config(rule))
    prepared = c.prepare()
    err = c.run_fails(AcceptanceUnknown, prepared=prepared)
    assert err.provider == provider
    assert "may exist" in str(err) and "not resubmitted" in str(err)
    assert c.requests() == {"submit": 1, "status": 0, "download": 0, "cancel": 0, "list": 0, "other": 0}
    assert c.server.sim.submits_by_key(provider=provider) == {c.submit_key_for(prepared): 1}
    assert len(c.tasks()) == 1 and c.stored_files() == []


@pytest.mark.parametrize("provider", PROVIDERS)
def test_submit_dropped_before_processing_is_not_resubmitted_either(make_contract, provider):
    """drop_before: the request reached the socket, the server reset it unread.

    A client cannot tell this from drop_after (both are a reset after the body was written), so the
    only safe answer is the same: AcceptanceUnknown, one POST, never a second one. The simulator
    confirms nothing was created, so nothing can be billed twice.
    """
    rule = FaultRule(provider=provider, endpoint="submit", kind="drop_before", times=1)
    c = make_contract(provider, sim_config(rule))
    err = c.run_fails(AcceptanceUnknown)
    assert "may exist" in str(err)
    assert c.requests()["submit"] == 1 and c.tasks() == []
    assert c.server.sim.submits_by_key(provider=provider) == {}


def _reserved_port() -> socket.socket:
    """A loopback port that is bound but not listening: connecting to it is refused, and no other
    process can take it meanwhile. SO_REUSEADDR lets the simulator bind it (and listen) later."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@pytest.mark.parametrize("provider", PROVIDERS)
def test_submit_connection_refused_is_retried_and_creates_one_task(make_contract, provider):
    """Nothing listens yet, so the POST is provably not sent: retried after a backoff, one task.

    The provider "comes up" during the client's first backoff sleep (a simulator on the refused port).
    ``host`` only serves the first frame; its provider API is never called.
    """
    host = make_contract(provider)
    prepared = host.prepare()
    reserved = _reserved_port()
    port = reserved.getsockname()[1]
    late: list[SimulatorServer] = []

    async def sleep(delay: float) -> None:
        host.delays.append(delay)
        if not late:
            late.append(SimulatorServer(sim_config(), port=port))
            reserved.close()
        await asyncio.sleep(min(delay, SLEEP_CAP_S))

    async def go() -> ClipResult:
        async with ProviderClient(
            get_adapter(provider),
            API_KEY,
            base_url=f"http://127.0.0.1:{port}/{provider}",
            settings=settings(),
            sleep=sleep,
            rng=host.rng,
        ) as client:
            result = await generate_clip(client, prepared, fsspec.filesystem("file"), host.dest())
            assert client.requests_sent["submit"] == 2  # the refused attempt and the accepted one
            return result

    try:
        result = asyncio.run(go())
        assert late, "the client never backed off"
        server = late[0]
        assert_stored_mp4(host, result)
        assert host.rng.draws[0][:2] == (0, settings().backoff_base_s) and host.delays[0] == host.rng.draws[0][2]
        assert server.sim.stats()["requests"][provider]["submit"] == 1  # only the attempt that connected
        assert server.sim.submits_by_key(provider=provider) == {host.submit_key_for(prepared): 1}
        assert [t["id"] for t in server.sim.tasks()] == [result.task_id]
        assert all(n == 0 for n in host.requests().values())
    finally:
        reserved.close()
        for server in late:
            server.stop()


# --- downloads: trickle, truncate, corrupt, expired URL ------------------------------------------


@pytest.mark.parametrize("provider", PROVIDERS)
def test_trickled_download_completes_within_per_read_timeouts(make_contract, provider):
    # 10 pieces 0.045 s apart: longer in total than the read timeout, never idle that long.
    rule = FaultRule(provider=provider, endpoint="download", kind="trickle", delay_s=0.45, times=1)
    c = make_contract(provider, sim_config(rule))
    result = c.run(read_timeout_s=0.3)
    assert_stored_mp4(c, result)
    assert c.fault_applied() == 1 and c.requests()["download"] == 1


@pytest.mark.parametrize("provider", PROVIDERS)
def test_truncated_download_is_retried_and_no_partial_file_is_left(make_contract, provider):
    rule = FaultRule(provider=provider, endpoint="download", kind="truncate", times=1)
    c = make_contract(provider, sim_config(rule))
    result = c.run()
    assert_stored_mp4(c, result)  # the complete file, and no .part-* from the cut-off attempt
    assert c.fault_applied() == 1 and c.requests()["download"] == 2


@pytest.mark.parametrize("provider", PROVIDERS)
def test_truncated_on_every_attempt_fails_without_a_partial_file(make_contract, provider):
    rule = FaultRule(provider=provider, endpoint="download", kind="truncate")
    c = make_contract(provider, sim_config(rule))
    err = c.run_fails(DownloadFailed, max_retries=2)
    assert "truncated" in str(err) and not err.url_expired
    assert c.requests()["download"] == 3 and c.stored_files() == []


@pytest.mark.parametrize("provider", PROVIDERS)
def test_corrupt_download_is_rejected_as_not_an_mp4(make_contract, provider):
    rule = FaultRule(provider=provider, endpoint="download", kind="corrupt", times=1)
    c = make_contract(provider, sim_config(rule))
    err = c.run_fails(DownloadFailed)
    assert "not an MP4" in str(err) and not err.url_expired and err.task_id == c.tasks()[0]["id"]
    assert c.requests()["download"] == 1 and c.stored_files() == []


@pytest.mark.parametrize("provider", PROVIDERS)
def test_expired_output_url_is_download_failed_url_expired(make_contract, provider):
    rule = FaultRule(provider=provider, endpoint="download", kind="expire_url")
    c = make_contract(provider, sim_config(rule))
    err = c.run_fails(DownloadFailed)
    assert err.url_expired and "403" in str(err) and err.task_id == c.tasks()[0]["id"]
    assert c.requests()["download"] == 1 and c.stored_files() == []
    assert c.requests()["submit"] == 1


# --- task outcomes: moderation, expiry ----------------------------------------------------------


def _moderation_message(provider: str) -> str:
    if provider == "vibedream":
        return sim_vibedream.MODERATION_ERROR
    # Ark's text for a silent clip: its own (ModelArk), relayed by RunPod / WaveSpeed / JieKou / Novita.
    return "The request failed because the output video may contain sensitive information."


@pytest.mark.parametrize("provider", PROVIDERS)
def test_moderation_is_task_failed_with_the_providers_message(make_contract, provider):
    rule = FaultRule(provider=provider, endpoint="submit", kind="moderation", times=1)
    c = make_contract(provider, sim_config(rule))
    err = c.run_fails(TaskFailed)
    [task] = c.tasks()
    assert err.moderation is True and err.state == "failed" and err.task_id == task["id"]
    assert _moderation_message(provider) in str(err)
    assert c.requests()["download"] == 0 and c.stored_files() == []


@pytest.mark.parametrize("provider", PROVIDERS)
def test_expired_task_is_task_failed_in_state_expired(make_contract, provider):
    rule = FaultRule(provider=provider, endpoint="submit", kind="expire", times=1)
    c = make_contract(provider, sim_config(rule))
    err = c.run_fails(TaskFailed)
    assert err.state == "expired" and not err.moderation and err.task_id == c.tasks()[0]["id"]
    assert c.requests()["download"] == 0 and c.stored_files() == []


def _failure_message(provider: str) -> str:
    return sim_vibedream.FAIL_ERROR if provider == "vibedream" else sim_outcomes.FAIL_MESSAGE


@pytest.mark.parametrize("provider", PROVIDERS)
def test_failed_task_is_task_failed_with_the_providers_reason(make_contract, provider):
    rule = FaultRule(provider=provider, endpoint="submit", kind="fail", times=1)
    c = make_contract(provider, sim_config(rule))
    err = c.run_fails(TaskFailed)
    assert err.state == "failed" and not err.moderation and err.task_id == c.tasks()[0]["id"]
    assert _failure_message(provider) in str(err)
    assert c.requests()["download"] == 0 and c.stored_files() == []


# --- validation: nothing is sent ----------------------------------------------------------------


def _rejections() -> list[Any]:
    """(provider, field, change, rule words); the image cases upload/write bad bytes first."""
    cases = []
    for p in PROVIDERS:
        cases += [
            pytest.param(p, "duration", {"duration": 3}, "from 4 to 12", id=f"{p}-duration-3"),
            pytest.param(p, "seed", {"seed": SEED_MAX[p] + 1}, f"0..{SEED_MAX[p]}", id=f"{p}-seed-over-max"),
            pytest.param(
                p,
                "image",
                {"image_bytes": png((100, 100))},
                "more than 300 and less than 6000 px",
                id=f"{p}-image-too-small",
            ),
            pytest.param(
                p, "image", {"image_bytes": png((1500, 400))}, "more than 0.4 and less than 2.5", id=f"{p}-image-aspect"
            ),
            pytest.param(
                p,
                "image",
                {"image_bytes": b"<html>not an image</html>"},
                "not a readable image",
                id=f"{p}-image-not-an-image",
            ),
        ]
    for p in ("runpod", "wavespeed"):
        cases.append(pytest.param(p, "resolution", {"resolution": "1080p"}, "480p, 720p", id=f"{p}-1080p"))
    return cases


@pytest.mark.parametrize(("provider", "field", "change", "rule"), _rejections())
def test_invalid_request_is_rejected_by_prepare_before_any_request(make_contract, provider, field, change, rule):
    c = make_contract(provider)
    change = dict(change)
    image = c.image_ref(change.pop("image_bytes"), "bad.png") if "image_bytes" in change else None
    with pytest.raises(InvalidRequest) as info:
        c.prepare(image=image, **change)
    err = info.value
    assert err.field == field and rule in err.rule and str(err).startswith(f"{field}=")
    # A provider's own limit names the provider; an unreadable file is unreadable for any provider.
    assert err.provider == (None if rule == "not a readable image" else provider)
    stats = c.server.sim.stats()
    assert all(n == 0 for per in stats["requests"].values() for n in per.values()), stats["requests"]
    assert sum(stats["tasks"].values()) == 0 and c.server.sim.submits() == []


# --- sync modes and id-field drift --------------------------------------------------------------


@pytest.mark.parametrize("wait_s", [0.05, 5.0], ids=["runsync-outlived", "runsync-final"])
def test_runpod_runsync_polls_status_only_when_the_answer_was_not_final(make_contract, wait_s):
    c = make_contract("runpod", sim_config(runsync_default_wait_s=wait_s))
    adapter = get_adapter("runpod", use_runsync=True)
    result = c.run(c.prepare(adapter), adapter=adapter)
    assert_stored_mp4(c, result)
    [task] = c.tasks()
    assert task["meta"]["sync"] is True and result.task_id == task["id"] and task["id"].startswith("sync-")
    assert result.reported_cost_usd == pytest.approx(0.096)
    if wait_s < LATENCY_S:  # /runsync answered IN_QUEUE/IN_PROGRESS: continue with /status/{id}
        assert c.requests()["submit"] == 1 and c.requests()["status"] >= 1
    else:  # /runsync answered COMPLETED: nothing left to poll
        assert c.requests() == {"submit": 1, "status": 0, "download": 1, "cancel": 0, "list": 0, "other": 0}


@pytest.mark.parametrize("timeout_s", [0.05, 5.0], ids=["sync-504-5004", "sync-completed"])
def test_wavespeed_sync_mode_timeout_keeps_polling_the_id_it_carried(make_contract, timeout_s):
    c = make_contract("wavespeed", sim_config(sync_mode_timeout_s=timeout_s))
    adapter = get_adapter("wavespeed", enable_sync_mode=True)
    prepared = c.prepare(adapter)
    assert prepared.wire.json is not None and prepared.wire.json["enable_sync_mode"] is True
    result = c.run(prepared, adapter=adapter)
    assert_stored_mp4(c, result)
    [task] = c.tasks()
    assert task["meta"]["sync"] is True and result.task_id == task["id"]
    assert c.requests()["submit"] == 1  # the 504 carried the id: never a second POST
    if timeout_s < LATENCY_S:
        assert c.requests()["status"] >= 1
    else:
        assert c.requests()["status"] == 0


def test_novita_submit_answer_with_id_instead_of_task_id(make_contract):
    c = make_contract("novita", sim_config(submit_id_field="id"))
    result = c.run()
    assert_stored_mp4(c, result)
    [task] = c.tasks()
    assert result.task_id == task["id"] and c.requests()["submit"] == 1


# --- concurrency cap ----------------------------------------------------------------------------


@pytest.mark.parametrize("provider", PROVIDERS)
def test_at_most_max_in_flight_tasks_at_the_provider(make_contract, provider):
    # 0.3 s tasks: the first two surely overlap, so reaching the cap is observable.
    c = make_contract(provider, sim_config(latency_min_s=0.3, latency_max_s=0.3))
    prepared = c.prepare()

    async def go() -> list[ClipResult]:
        async with c.client(max_in_flight=2) as client:
            fs = fsspec.filesystem("file")
            return await asyncio.gather(
                *(generate_clip(client, prepared, fs, c.dest(f"clip{i}.mp4")) for i in range(5))
            )

    results = asyncio.run(go())
    assert len({r.task_id for r in results}) == 5 and c.stored_files() == [f"clip{i}.mp4" for i in range(5)]
    tasks = c.tasks()
    assert len(tasks) == 5 and all(t["finished_at"] is not None for t in tasks)
    # At every task's creation, how many tasks were between creation and their end at the provider?
    overlaps = [sum(1 for o in tasks if o["created_at"] <= t["created_at"] < o["finished_at"]) for t in tasks]
    assert max(overlaps) == 2, overlaps  # the cap was reached, never exceeded


# --- figures ------------------------------------------------------------------------------------


def test_figures_requests_and_wall_time_per_clip_at_default_latency(tmp_path):
    """One clip per provider at SimConfig() defaults (2 s), settings as the CLI's --simulator uses.

    Prints the figures (run with -s). The five clips run concurrently, so this takes one clip's time.
    """
    with SimulatorServer(SimConfig()) as server:
        latency = server.sim.config.provider("runpod").latency_min_s
        contracts = {p: Contract(server, p, tmp_path / p) for p in PROVIDERS}
        for p in PROVIDERS:
            (tmp_path / p).mkdir()
        prepared = {p: contracts[p].prepare() for p in PROVIDERS}  # before the clock starts

        async def one(p: str) -> tuple[str, float, ClipResult]:
            t0 = time.monotonic()
            async with ProviderClient(
                get_adapter(p),
                API_KEY,
                base_url=server.provider_url(p),
                settings=ClientSettings(expected_latency_s=latency),
            ) as client:
                result = await generate_clip(client, prepared[p], fsspec.filesystem("file"), contracts[p].dest())
            return p, time.monotonic() - t0, result

        async def all_of() -> list[tuple[str, float, ClipResult]]:
            return await asyncio.gather(*(one(p) for p in PROVIDERS))

        rows = asyncio.run(all_of())
        requests = server.sim.stats()["requests"]
    print(
        f"\nper clip at the simulator's default latency ({latency:.1f} s),"
        f" ClientSettings(expected_latency_s={latency}):"
    )
    for p, wall, result in rows:
        r = requests[p]
        print(
            f"  {p:<10} submit={r['submit']} status={r['status']} download={r['download']} "
            f"wall={wall:.2f}s task={result.timings['task_s']:.2f}s"
        )
    for p, wall, result in rows:
        r = requests[p]
        # Exact poll counts and wall times depend on machine load; these hold on any machine.
        assert r["submit"] == 1 and r["download"] == 1 and r["status"] >= 1, (p, r)
        assert wall >= latency and result.status == "succeeded", (p, wall)


def test_the_simulator_renders_from_its_own_pixel_table_and_it_agrees_with_the_products():
    """Two tables written apart (the product's and the simulator's), so a wrong entry fails here or in a
    render check instead of passing on both sides; every (ratio, resolution) pair, 1080p included."""
    from seedance_pipeline.core import model_spec
    from seedance_pipeline.simulator import model as sim_model

    assert sim_model.SIZES == model_spec.PIXEL_SIZES and sim_model.FPS == model_spec.FPS
    assert all(sim_model.follow_image(w, h) == model_spec.nearest_ratio(w, h) for w, h in sim_model.SIZES.values())


def test_the_simulator_serves_every_registered_provider():
    """The contract runs for each adapter in the registry, each against its own simulator module."""
    from seedance_pipeline import simulator

    assert set(simulator.PROVIDERS) == set(PROVIDERS)
