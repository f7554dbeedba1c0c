"""What only ModelArk (ByteDance's own API, docs/providers.md §7) has, beyond the contract suite's rows: the adapter's
translation from documented payloads, the simulator's Ark rules (roles, the 120-queued cap, the 7-day list, DELETE),
the engine's cancel of queued tasks only, the last frame stored beside the clip, and settling from Ark's list."""

from __future__ import annotations

import asyncio
import base64
import io

import fsspec
import httpx
import pytest
import yaml
from PIL import Image

from seedance_pipeline.clip.generate import generate_clip
from seedance_pipeline.clip.prepare import build_request, prepare
from seedance_pipeline.core.errors import SubmitRejected
from seedance_pipeline.ledger.records import AttemptRecord
from seedance_pipeline.ledger.settle import TaskList, settle
from seedance_pipeline.ledger.states import AttemptState
from seedance_pipeline.providers import get_adapter
from seedance_pipeline.providers import modelark as ark
from seedance_pipeline.providers.base import WireReply
from seedance_pipeline.providers.engine import ClientSettings, ProviderClient
from seedance_pipeline.providers.states import TaskState
from seedance_pipeline.simulator import modelark as sim_ark
from seedance_pipeline.simulator.config import ProviderSimConfig, SimConfig
from seedance_pipeline_tests.simulator_support import fake_render

KEY = "sk-ark-test-0123456789abcdef"
FAST = ClientSettings(expected_latency_s=0.1, min_poll_interval_s=0.05, max_poll_interval_s=0.3, backoff_base_s=0.02)


def png(size=(800, 450), color=(40, 120, 200)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return buf.getvalue()


def data_uri(size=(800, 450)) -> str:
    return "data:image/png;base64," + base64.b64encode(png(size)).decode()


@pytest.fixture
def server():
    from seedance_pipeline.simulator.server import SimulatorServer

    def make(real_render: bool = False, **timing):
        cfg = ProviderSimConfig(**{"latency_min_s": 0.1, "latency_max_s": 0.1, **timing})
        config = SimConfig(providers={"modelark": cfg}, api_keys=[KEY])
        made.append(SimulatorServer(config, render_fn=None if real_render else fake_render))
        return made[-1]

    made: list = []
    yield make
    for srv in made:
        srv.stop()


def client(srv, **kw) -> ProviderClient:
    return ProviderClient(get_adapter("modelark"), KEY, base_url=srv.provider_url("modelark"), settings=FAST, **kw)


def raw(srv) -> httpx.Client:
    return httpx.Client(
        base_url=srv.provider_url("modelark"), headers={"Authorization": f"Bearer {KEY}"}, trust_env=False
    )


# --- the adapter, from documented payloads (docs/providers.md §7.3, §7.4) -----------------------------------


@pytest.mark.parametrize(
    ("status", "state"),
    [
        ("queued", TaskState.QUEUED),
        ("running", TaskState.RUNNING),
        ("cancelled", TaskState.CANCELLED),
        ("succeeded", TaskState.SUCCEEDED),
        ("failed", TaskState.FAILED),
        ("expired", TaskState.EXPIRED),
    ],
)
def test_all_six_ark_states_map_to_ours(status, state):
    body = {"id": "cgt-1", "status": status, "content": {"video_url": "https://x/v.mp4"}}
    assert get_adapter("modelark").parse_poll(WireReply(200, body)).state is state


def test_the_documented_query_answer_gives_url_last_frame_seed_and_the_charge_in_usd():
    body = {
        "id": "cgt-20260828062711-hj94q",
        "status": "succeeded",
        "content": {"video_url": "https://cdn/v.mp4", "last_frame_url": "https://cdn/f.png"},
        "usage": {"completion_tokens": 19845, "total_tokens": 19845},
        "seed": 17918,
        "service_tier": "flex",
        "generate_audio": True,
    }
    snap = get_adapter("modelark").parse_poll(WireReply(200, body))
    assert snap.output_url == "https://cdn/v.mp4" and snap.extra == {
        "last_frame_url": "https://cdn/f.png",
        "seed": 17918,
    }
    assert snap.reported_cost_usd == pytest.approx(19845 * 1.2 / 1e6)  # flex with audio: $1.2 per million
    assert snap.url_ttl_s == 24 * 3600


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        ("InputTextSensitiveContentDetected", "input text"),
        ("InputImageSensitiveContentDetected.PrivacyInformation", "input image"),
        ("OutputVideoSensitiveContentDetected", "output video"),
        ("OutputAudioSensitiveContentDetected", "output audio"),
        ("AudioSensitiveContentDetected.PolicyViolation", "copyright"),
    ],
)
def test_moderation_codes_are_kept_apart_in_the_failure_reason(code, kind):
    body = {"id": "cgt-1", "status": "failed", "error": {"code": code, "message": "flagged"}}
    snap = get_adapter("modelark").parse_poll(WireReply(200, body))
    assert snap.moderation and snap.error_code == code and f"moderation ({kind}" in (snap.error or "")
    assert code in (snap.error or "")


def test_a_plain_failure_is_not_moderation_and_the_error_body_names_code_and_param():
    adapter = get_adapter("modelark")
    snap = adapter.parse_poll(
        WireReply(200, {"id": "c", "status": "failed", "error": {"code": "InternalServiceError"}})
    )
    assert snap.state is TaskState.FAILED and not snap.moderation
    body = {"error": {"code": "InvalidParameter", "message": "bad ratio", "param": "ratio", "type": "BadRequest"}}
    assert adapter.error_message(WireReply(400, body)) == ("InvalidParameter", "bad ratio (param ratio)")


def test_region_and_model_come_from_the_adapters_settings(monkeypatch):
    monkeypatch.setenv("SEEDANCE_MODELARK_REGION", "volcengine")
    adapter = get_adapter("modelark")
    assert adapter.base_url == "https://ark.cn-beijing.volces.com/api/v3"
    assert adapter.model == "doubao-seedance-1-5-pro-251215"
    monkeypatch.setenv("SEEDANCE_MODELARK_MODEL", "ep-20261203-abc")
    assert get_adapter("modelark").model == "ep-20261203-abc"
    monkeypatch.setenv("SEEDANCE_MODELARK_REGION", "mars")
    from seedance_pipeline.core.errors import SettingError

    with pytest.raises(SettingError, match="SEEDANCE_MODELARK_REGION"):
        get_adapter("modelark")


def test_the_price_table_holds_the_adapters_token_rates():
    from importlib import resources

    table = yaml.safe_load(resources.files("seedance_pipeline.pricing").joinpath("prices.yaml").read_text())
    rates = {(r["audio"], r["tier"]): r["usd"] for r in table["providers"]["modelark"]["rates"]}
    assert rates == ark.USD_PER_MILLION_TOKENS and rates[(False, "default")] == rates[(True, "default")] / 2


def test_flex_with_a_deadline_goes_out_and_is_forecast_at_half(tmp_path):
    image = tmp_path / "f.png"
    image.write_bytes(png())
    fields = {"prompt": "p", "image": str(image), "duration": 4, "resolution": "480p"}
    flex = prepare(get_adapter("modelark"), build_request(**fields, service_tier="flex", execution_expires_after=7200))
    online = prepare(get_adapter("modelark"), build_request(**fields))
    body = flex.wire.json or {}
    assert body["service_tier"] == "flex" and body["execution_expires_after"] == 7200
    assert (online.wire.json or {})["execution_expires_after"] == ark.DEFAULT_EXPIRES_AFTER_S
    assert flex.estimate.rate_usd == online.estimate.rate_usd / 2  # estimates are rounded to a millionth of a $
    assert flex.estimate.usd == pytest.approx(online.estimate.usd / 2, abs=1e-6)


# --- the simulator's Ark rules, over HTTP -----------------------------------------------------------------


def _body(*images: dict) -> dict:
    return {"model": ark.REGIONS["byteplus"][1], "content": [{"type": "text", "text": "p"}, *images]}


def test_a_last_frame_without_the_first_frames_role_is_arks_400(server):
    srv = server()
    first = {"type": "image_url", "image_url": {"url": data_uri()}}
    last = {"type": "image_url", "image_url": {"url": data_uri()}, "role": "last_frame"}
    with raw(srv) as http:
        r = http.post(sim_ark.TASKS_PATH, json=_body(first, last))
    assert r.status_code == 400 and r.json()["error"]["message"].startswith("role must be specified for image contents")
    assert srv.sim.tasks() == []


def test_at_most_120_tasks_wait_queued(server):
    srv = server(queue_delay_s=600)
    item = {"type": "image_url", "image_url": {"url": data_uri((400, 304))}, "role": "first_frame"}
    with raw(srv) as http:
        codes = [http.post(sim_ark.TASKS_PATH, json=_body(item)).status_code for _ in range(sim_ark.MAX_QUEUED)]
        over = http.post(sim_ark.TASKS_PATH, json=_body(item))
    assert codes == [200] * 120 and over.status_code == 429
    assert over.json()["error"]["code"] == sim_ark.QUEUE_FULL_CODE and len(srv.sim.tasks()) == 120


def test_the_list_filters_by_model_and_shows_seven_days_only(server):
    srv = server()
    item = {"type": "image_url", "image_url": {"url": data_uri()}, "role": "first_frame"}
    with raw(srv) as http:
        ids = [http.post(sim_ark.TASKS_PATH, json=_body(item)).json()["id"] for _ in range(3)]
        old = next(t for t in srv.sim.task_objects() if t.id == ids[0])
        old.created_wall -= 8 * 86400  # created eight days ago
        listed = http.get(sim_ark.TASKS_PATH, params={"filter.model": ark.REGIONS["byteplus"][1]}).json()
        other = http.get(sim_ark.TASKS_PATH, params={"filter.model": "doubao-seedance-1-5-pro-251215"}).json()
        one = http.get(sim_ark.TASKS_PATH, params={"filter.task_ids": ids[2]}).json()
    assert sorted(i["id"] for i in listed["items"]) == sorted(ids[1:]) and listed["total"] == 2
    assert other == {"items": [], "total": 0} and [i["id"] for i in one["items"]] == [ids[2]]


def test_the_engine_cancels_a_queued_task_and_leaves_running_and_finished_ones_alone(server):
    srv = server(queue_delay_s=30)
    item = {"type": "image_url", "image_url": {"url": data_uri()}, "role": "first_frame"}
    with raw(srv) as http:
        queued = http.post(sim_ark.TASKS_PATH, json=_body(item)).json()["id"]

    async def cancel(task_id: str):
        async with client(srv) as c:
            return await c.cancel(task_id)

    assert asyncio.run(cancel(queued)).state is TaskState.CANCELLED
    assert srv.sim.stats()["requests"]["modelark"]["cancel"] == 1

    srv2 = server(latency_min_s=30, latency_max_s=30)  # starts at once, runs 30 s
    with raw(srv2) as http:
        running = http.post(sim_ark.TASKS_PATH, json=_body(item)).json()["id"]
    snap = asyncio.run(
        ProviderClient(get_adapter("modelark"), KEY, base_url=srv2.provider_url("modelark")).cancel(running)
    )
    assert snap is not None and snap.state is TaskState.RUNNING
    assert srv2.sim.stats()["requests"]["modelark"]["cancel"] == 0  # never sent: Ark refuses running tasks


def test_delete_refuses_a_running_task_and_deletes_a_finished_ones_record(server):
    srv = server(latency_min_s=0.05, latency_max_s=0.05)
    item = {"type": "image_url", "image_url": {"url": data_uri()}, "role": "first_frame"}
    with raw(srv) as http:
        task_id = http.post(sim_ark.TASKS_PATH, json=_body(item)).json()["id"]
        for _ in range(200):
            if http.get(f"{sim_ark.TASKS_PATH}/{task_id}").json()["status"] == "succeeded":
                break
            asyncio.run(asyncio.sleep(0.02))
        assert http.delete(f"{sim_ark.TASKS_PATH}/{task_id}").status_code == 200
        assert http.get(f"{sim_ark.TASKS_PATH}/{task_id}").status_code == 404


# --- the last frame, and both frames with their roles, through the real client ----------------------------


def test_first_and_last_frame_go_out_with_roles_and_the_last_frame_is_stored_beside_the_clip(server, tmp_path):
    srv = server(real_render=True)
    first, last = tmp_path / "first.png", tmp_path / "last.png"
    first.write_bytes(png())
    last.write_bytes(png((810, 456), (200, 60, 40)))
    req = build_request(prompt="p", image=str(first), last_image=str(last), duration=4, resolution="480p", seed=5)
    prepared = prepare(get_adapter("modelark"), req)
    dest = str(tmp_path / "out" / "first.mp4")

    async def go():
        async with client(srv) as c:
            return await generate_clip(
                c, prepared, fsspec.filesystem("file"), dest, last_frame_path=str(tmp_path / "out" / "first.last.png")
            )

    result = asyncio.run(go())
    [submit] = srv.sim.submits()
    roles = [(i["type"], i.get("role")) for i in submit["body"]["content"]]
    assert roles == [("text", None), ("image_url", "first_frame"), ("image_url", "last_frame")]
    assert result.last_frame == str(tmp_path / "out" / "first.last.png") and result.warnings == []
    with Image.open(result.last_frame) as frame:
        assert frame.size == (864, 496) and frame.getpixel((10, 10)) == (200, 60, 40)  # the last image, at clip size
    assert srv.sim.stats()["requests"]["modelark"]["download"] == 2  # the MP4 and the PNG


def test_a_rejected_submit_is_submit_rejected_with_arks_code(server, tmp_path):
    srv = server(refused_resolutions=["1080p"])
    image = tmp_path / "f.png"
    image.write_bytes(png())
    prepared = prepare(get_adapter("modelark"), build_request(prompt="p", image=str(image), resolution="1080p"))

    async def go():
        async with client(srv) as c:
            return await c.submit(prepared.wire)

    with pytest.raises(SubmitRejected) as info:
        asyncio.run(go())
    assert info.value.code == "InvalidParameter" and "1080p" in str(info.value)


# --- acceptance unknown, settled from Ark's list (no prompt, no image in it) -------------------------------

NOW = 1_800_000_000.0


def _record(seed: int) -> AttemptRecord:
    request = {"duration": 4, "resolution": "480p", "generate_audio": False, "seed": seed, "image_sent_sha256": "a"}
    return AttemptRecord(
        attempt_id="2027-01-15T080000Z-0000000001",
        fingerprint="f" * 64,
        image="lake",
        prompt="dawn",
        provider="modelark",
        state=AttemptState.UNKNOWN,
        request=request,
        estimated_cost_usd=0.05,
        created_at=NOW - 600,
        updated_at=NOW - 595,
    )


def _listing(seed: int):
    item = {"id": "cgt-x", "model": ark.REGIONS["byteplus"][1], "created_at": NOW - 598, "seed": seed}
    item.update(resolution="480p", duration=4, generate_audio=False, ratio="16:9", status="succeeded")
    tasks, complete = get_adapter("modelark").parse_list(WireReply(200, {"items": [item], "total": 1}))
    return TaskList("modelark", tasks, complete, 60.0, 7 * 86400.0, shows_images=False)


def test_an_explicit_seed_in_the_window_proves_the_task_and_a_random_one_leaves_it_to_a_person():
    [found] = settle([_record(7)], _listing(7), set(), now=NOW)
    assert found.task is not None and found.task.task_id == "cgt-x"
    [unknown] = settle([_record(-1)], _listing(123456), set(), now=NOW)
    assert not unknown.settled and "shows neither prompt nor image" in unknown.reason
    [other] = settle([_record(7)], _listing(8), set(), now=NOW)  # another seed: not ours, and nothing else is
    assert other.absent


# --- `tasks abandon`: DELETE for a queued task, a clear no for a running one ----------------------------------


@pytest.mark.parametrize("running", [False, True], ids=["queued", "running"])
def test_tasks_abandon_cancels_a_queued_task_and_says_so_when_it_already_runs(server, tmp_path, monkeypatch, running):
    import time

    from click.testing import CliRunner

    from seedance_pipeline.cli.tasks import tasks
    from seedance_pipeline.ledger.records import new_attempt_id
    from seedance_pipeline.ledger.store import TaskStore
    from seedance_pipeline.storage.resource import SeedanceStorage

    srv = server(**({"latency_min_s": 60, "latency_max_s": 60} if running else {"queue_delay_s": 60}))
    srv.sim.configure(srv.sim.config.model_copy(update={"api_keys": None}))  # the simulator key the CLI sends
    item = {"type": "image_url", "image_url": {"url": data_uri()}, "role": "first_frame"}
    with raw(srv) as http:
        task_id = http.post(sim_ark.TASKS_PATH, json=_body(item)).json()["id"]
    monkeypatch.setenv("SEEDANCE_SIMULATOR_URL", srv.base_url)
    monkeypatch.delenv("ARK_API_KEY", raising=False)
    storage = SeedanceStorage(url=str(tmp_path / "storage"))
    now = time.time()
    record = AttemptRecord(
        attempt_id=new_attempt_id(now),
        fingerprint="e" * 64,
        image="lake",
        prompt="dawn",
        provider="modelark",
        state=AttemptState.ACCEPTED,
        simulated=True,
        task_id=task_id,
        request={},
        estimated_cost_usd=0.05,
        created_at=now,
        updated_at=now,
    )
    TaskStore(storage).save(record, claim=False)
    out = CliRunner().invoke(tasks, ["abandon", record.attempt_id, "--storage", str(tmp_path / "storage")])
    after = TaskStore(storage).load(record.attempt_id)
    if running:
        assert out.exit_code == 1 and "it is already running" in out.output and "cancels only queued" in out.output
        assert after.state is AttemptState.ACCEPTED and srv.sim.stats()["requests"]["modelark"]["cancel"] == 0
    else:
        assert out.exit_code == 0 and f"cancelled lake|dawn on modelark, task {task_id}" in out.output, out.output
        assert after.state is AttemptState.ABANDONED and srv.sim.stats()["requests"]["modelark"]["cancel"] == 1


# --- the pipeline: provider auto considers ModelArk; its last frame lands beside the clip ------------------

AUTO_1080P = "text: a calm lake\nprovider: auto\nduration: 4\nresolution: 1080p\nseed: 3\n"


def test_auto_picks_modelark_at_list_price_and_the_run_stores_its_last_frame(storage, providers, sim, instance):
    """At 1080p only JieKou, Novita, VibeDream and ModelArk qualify; ModelArk and the two resellers cost the same
    ByteDance rate, and ModelArk's is published where theirs is assumed (prices.yaml), so auto picks it."""
    import json

    from seedance_pipeline.cli.runner import run_pipeline
    from seedance_pipeline.planning.prompt_spec import PromptSpec
    from seedance_pipeline.planning.provider_choice import planned_provider
    from seedance_pipeline.storage import layout
    from seedance_pipeline_tests.conftest import png as conftest_png
    from seedance_pipeline_tests.conftest import put

    assert planned_provider(PromptSpec.model_validate(yaml.safe_load(AUTO_1080P)), providers) == "modelark"
    put(storage, "images/lake.png", conftest_png())
    put(storage, "prompts/dawn.yaml", AUTO_1080P)
    report = run_pipeline(instance, storage, providers)
    assert report.ok, report.failures
    clip = storage.clip_path("dawn", "lake")
    sidecar = json.loads(storage.read_bytes(storage.sidecar_path("dawn", "lake")))
    assert sidecar["provider"] == "modelark" and sidecar["last_frame"] == layout.last_frame_of(clip)
    with Image.open(io.BytesIO(storage.read_bytes(layout.last_frame_of(clip)))) as frame:
        assert frame.format == "PNG" and frame.size == (1920, 1080)
    assert sidecar["reported_cost_usd"] == pytest.approx(sim_ark.tokens(1920, 1080, 4) * 1.2 / 1e6)
    # The cost report sets the estimate (observed token formula: 1920 x 1088 x 97 / 1024) against the reported charge.
    drift = storage.read_bytes(report.cost_report).decode().split("## Estimate against what the provider reported")[1]
    [row] = [line for line in drift.splitlines() if line.startswith("| modelark")]
    assert abs(float(row.strip("| ").split("|")[-1])) < 0.01, row  # percent: the simulator counts tokens alike


def test_auto_fails_over_from_modelark_only_before_acceptance(storage, providers, sim, instance):
    from seedance_pipeline.cli.runner import run_pipeline
    from seedance_pipeline_tests.conftest import fast_config, put
    from seedance_pipeline_tests.conftest import png as conftest_png

    config = fast_config()
    config.providers["modelark"] = config.providers["modelark"].model_copy(update={"refused_resolutions": ["1080p"]})
    sim.configure(config)
    put(storage, "images/lake.png", conftest_png())
    put(storage, "prompts/dawn.yaml", AUTO_1080P)
    report = run_pipeline(instance, storage, providers)
    assert report.ok, report.failures
    stats = sim.sim.stats()
    assert stats["tasks"]["modelark"] == 0 and stats["requests"]["modelark"]["submit"] == 1  # refused: nothing made
    assert stats["tasks"]["jiekou"] == 1  # the next cheapest, once


def test_a_flex_prompt_with_a_deadline_sends_both_and_is_forecast_at_half(storage, providers, sim, instance):
    from seedance_pipeline.cli.runner import run_pipeline
    from seedance_pipeline_tests.conftest import png as conftest_png
    from seedance_pipeline_tests.conftest import put

    flex = "text: a calm lake\nprovider: modelark\nduration: 4\nresolution: 480p\nseed: 3\nservice_tier: flex\n"
    put(storage, "images/lake.png", conftest_png())
    put(storage, "prompts/dawn.yaml", flex + "execution_expires_after: 7200\n")
    report = run_pipeline(instance, storage, providers)
    assert report.ok, report.failures
    [submit] = sim.sim.submits()
    assert submit["body"]["service_tier"] == "flex" and submit["body"]["execution_expires_after"] == 7200
    import json

    sidecar = json.loads(storage.read_bytes(storage.sidecar_path("dawn", "lake")))
    online = 864 * 496 * (24 * 4 + 1) / 1024 * 1.2 / 1e6  # the same clip at the online silent rate (prices.yaml)
    assert sidecar["estimated_cost_usd"] == pytest.approx(online / 2, abs=1e-6)
    assert sidecar["reported_cost_usd"] == pytest.approx(sim_ark.tokens(864, 496, 4) * 0.6 / 1e6)  # flex, silent


def test_a_task_that_would_end_past_its_deadline_expires_at_the_deadline(server):
    srv = server(queue_delay_s=5000)  # a flex queue longer than the hour the request allows
    item = {"type": "image_url", "image_url": {"url": data_uri()}, "role": "first_frame"}
    body = {**_body(item), "service_tier": "flex", "execution_expires_after": 3600}
    with raw(srv) as http:
        task_id = http.post(sim_ark.TASKS_PATH, json=body).json()["id"]
    [task] = srv.sim.task_objects()
    assert task.id == task_id and task.phase() == "queued"
    assert task.phase(task.created_mono + 3600) == "expired" and task.phase(task.created_mono + 3599) == "queued"


def test_a_delete_refused_because_the_task_started_meanwhile_reports_the_running_task():
    """Queued when asked, running when the DELETE arrives (Ark refuses it): the engine asks again and returns the
    running task with Ark's refusal, instead of failing the cancel (a scripted transport: the race is exact)."""
    answers = iter(["queued", "refused", "running"])
    seen: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request.method)
        step = next(answers)
        if step == "refused":
            error = {
                "code": "InvalidAction.TaskNotCancellable",
                "message": "running",
                "param": "",
                "type": "BadRequest",
            }
            return httpx.Response(400, json={"error": error})
        return httpx.Response(200, json={"id": "cgt-1", "status": step})

    async def go():
        async with ProviderClient(
            get_adapter("modelark"), KEY, base_url="https://ark.test/api/v3", transport=httpx.MockTransport(handle)
        ) as c:
            return await c.cancel("cgt-1")

    snap = asyncio.run(go())
    assert seen == ["GET", "DELETE", "GET"] and snap is not None
    assert snap.state is TaskState.RUNNING and snap.error == "running"
