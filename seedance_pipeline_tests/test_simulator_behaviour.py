"""Timing, queueing, sync modes, counters and the control routes (fast stand-in renderer)."""

from __future__ import annotations

import time

import httpx
import pytest

from seedance_pipeline.simulator import FaultRule, ProviderSimConfig, SimConfig, submit_key
from seedance_pipeline_tests.simulator_support import (
    PROVIDERS,
    SUBMIT_PATHS,
    fast_config,
    image_bytes,
    poll_path,
    poll_until_terminal,
    status_of,
    submit_body,
    task_id_of,
    wait_for,
)

RUNPOD = "/v2/seedance-v1-5-pro-i2v"


def _submit(client, srv, provider, **overrides):
    url = srv.put_asset("frame.png", image_bytes())
    return client.post(
        srv.provider_url(provider) + SUBMIT_PATHS[provider], json=submit_body(provider, url, **overrides)
    )


def _one_provider(provider: str, **kw) -> SimConfig:
    return SimConfig(providers={provider: ProviderSimConfig(**kw)})


# --- queueing and concurrency ---------------------------------------------------------------


def test_states_follow_the_clock(make_server, client):
    # 2 s in the queue: the first poll lands in it, however loaded the machine.
    srv = make_server(_one_provider("jiekou", latency_min_s=0.3, latency_max_s=0.3, queue_delay_s=2))
    task_id = _submit(client, srv, "jiekou").json()["task_id"]
    url = srv.provider_url("jiekou") + poll_path("jiekou", task_id)
    seen = []

    def status() -> str:
        s = client.get(url).json()["task"]
        if not seen or seen[-1] != s["status"]:
            seen.append(s["status"])
        return s["status"]

    first = client.get(url).json()["task"]
    assert first["status"] == "TASK_STATUS_QUEUED" and first["eta"] >= 1 and first["progress_percent"] == 0
    wait_for(status, lambda s: s == "TASK_STATUS_SUCCEED", timeout_s=10)
    assert seen == ["TASK_STATUS_QUEUED", "TASK_STATUS_PROCESSING", "TASK_STATUS_SUCCEED"]


def test_concurrency_cap_queues_tasks(make_server, client):
    # 60 s each: the polls below are answered long before the first task could finish, however loaded the machine.
    srv = make_server(_one_provider("wavespeed", latency_min_s=60, latency_max_s=60, max_concurrency=1))
    ids = [_submit(client, srv, "wavespeed", seed=i).json()["data"]["id"] for i in range(3)]
    statuses = [
        client.get(srv.provider_url("wavespeed") + poll_path("wavespeed", i)).json()["data"]["status"] for i in ids
    ]
    assert statuses == ["processing", "created", "created"]
    tasks = {t["id"]: t for t in srv.sim.tasks()}
    starts = [tasks[i]["starts_at"] for i in ids]
    dones = [tasks[i]["done_at"] for i in ids]
    # Each queued task starts when the one before it is done (test_concurrency_cap_of_two sees queued ones finish).
    assert starts[1] == pytest.approx(dones[0]) and starts[2] == pytest.approx(dones[1])
    assert dones[0] - starts[0] == pytest.approx(60)


def test_concurrency_cap_of_two(make_server, client):
    srv = make_server(_one_provider("vibedream", latency_min_s=0.2, latency_max_s=0.2, max_concurrency=2))
    for i in range(4):
        assert _submit(client, srv, "vibedream", seed=i).status_code == 200
    tasks = sorted(srv.sim.tasks(), key=lambda t: t["starts_at"])
    # never more than two running at once
    for t in tasks:
        running = [u for u in tasks if u["starts_at"] <= t["starts_at"] < u["done_at"]]
        assert len(running) <= 2
    assert tasks[2]["starts_at"] >= tasks[0]["done_at"] - 1e-6
    for t in tasks:  # the queued ones run in their turn and finish
        assert poll_until_terminal(client, srv, "vibedream", t["id"])["status"] == "completed"


# --- RunPod specifics -----------------------------------------------------------------------------


def test_runpod_runsync_completes_within_wait(make_server, client):
    srv = make_server(_one_provider("runpod", latency_min_s=0.1, latency_max_s=0.1))
    url = srv.put_asset("frame.png", image_bytes())
    r = client.post(srv.provider_url("runpod") + RUNPOD + "/runsync", json=submit_body("runpod", url))
    assert r.status_code == 200
    job = r.json()
    assert job["status"] == "COMPLETED" and job["id"].startswith("sync-") and job["output"]["video_url"]
    assert httpx.get(job["output"]["video_url"], trust_env=False).content[4:8] == b"ftyp"


def test_runpod_runsync_outlives_its_wait(make_server, client):
    srv = make_server(_one_provider("runpod", latency_min_s=3, latency_max_s=3, runsync_default_wait_s=0.1))
    url = srv.put_asset("frame.png", image_bytes())
    t0 = time.monotonic()
    r = client.post(srv.provider_url("runpod") + RUNPOD + "/runsync", json=submit_body("runpod", url))
    assert time.monotonic() - t0 < 2.5  # answered at its wait, long before the 3 s task is done
    assert r.status_code == 200
    assert set(r.json()) == {"id", "status"} and r.json()["status"] in ("IN_QUEUE", "IN_PROGRESS")
    job = poll_until_terminal(client, srv, "runpod", r.json()["id"])
    assert job["status"] == "COMPLETED"


def test_runpod_runsync_wait_query_is_clamped_to_one_second(make_server, client):
    srv = make_server(_one_provider("runpod", latency_min_s=3, latency_max_s=3))
    url = srv.put_asset("frame.png", image_bytes())
    t0 = time.monotonic()
    r = client.post(srv.provider_url("runpod") + RUNPOD + "/runsync?wait=10", json=submit_body("runpod", url))
    elapsed = time.monotonic() - t0
    assert r.json()["status"] == "IN_PROGRESS" and 0.95 <= elapsed < 2.5


def test_runpod_cancel(make_server, client):
    srv = make_server(_one_provider("runpod", latency_min_s=0.1, latency_max_s=0.1, queue_delay_s=5))
    job_id = _submit(client, srv, "runpod").json()["id"]
    r = client.post(srv.provider_url("runpod") + f"{RUNPOD}/cancel/{job_id}")
    assert r.status_code == 200 and r.json() == {"id": job_id, "status": "CANCELLED"}
    assert client.get(srv.provider_url("runpod") + f"{RUNPOD}/status/{job_id}").json()["status"] == "CANCELLED"
    assert srv.sim.stats()["requests"]["runpod"]["cancel"] == 1

    srv2 = make_server(_one_provider("runpod", latency_min_s=2, latency_max_s=2))
    job_id = _submit(client, srv2, "runpod").json()["id"]
    r = client.post(srv2.provider_url("runpod") + f"{RUNPOD}/cancel/{job_id}")
    assert r.json() == {"id": job_id, "status": "IN_PROGRESS"}  # running: not cancelled
    r = client.post(srv2.provider_url("runpod") + f"{RUNPOD}/cancel/nope")
    assert r.status_code == 404


def test_runpod_record_ttl(make_server, client):
    srv = make_server(_one_provider("runpod", latency_min_s=0.05, latency_max_s=0.05, record_ttl_s=0.3))
    job_id = _submit(client, srv, "runpod").json()["id"]
    job = poll_until_terminal(client, srv, "runpod", job_id)
    assert job["status"] == "COMPLETED"
    url = srv.provider_url("runpod") + f"{RUNPOD}/status/{job_id}"
    gone = wait_for(lambda: client.get(url), lambda r: r.status_code == 404, timeout_s=5)
    assert gone.json() == {"error": "request does not exist"}
    # the video URL outlives the job record
    assert httpx.get(job["output"]["video_url"], trust_env=False).status_code == 200


def test_runpod_record_ttl_defaults(make_server, client):
    srv = make_server()
    url = srv.put_asset("frame.png", image_bytes())
    client.post(srv.provider_url("runpod") + RUNPOD + "/run", json=submit_body("runpod", url))
    client.post(srv.provider_url("runpod") + RUNPOD + "/runsync", json=submit_body("runpod", url))
    ttl = {t["meta"]["sync"]: t["meta"]["record_ttl_s"] for t in srv.sim.tasks()}
    assert ttl == {False: 1800.0, True: 60.0}


def test_runpod_cost_by_resolution(make_server, client):
    srv = make_server()
    url = srv.put_asset("frame.png", image_bytes())
    r = client.post(
        srv.provider_url("runpod") + RUNPOD + "/runsync",
        json=submit_body("runpod", url, resolution="720p", duration=5),
    )
    assert r.json()["output"]["cost"] == pytest.approx(0.26)


# --- WaveSpeed sync mode ---------------------------------------------------------------------


def test_wavespeed_sync_mode_completes(make_server, client):
    srv = make_server(_one_provider("wavespeed", latency_min_s=0.1, latency_max_s=0.1))
    r = _submit(client, srv, "wavespeed", enable_sync_mode=True)
    assert r.status_code == 200
    data = r.json()["data"]
    assert data["status"] == "completed" and data["outputs"][0].endswith(".mp4")
    assert data["timings"]["inference"] >= 90


def test_wavespeed_sync_mode_timeout_5004(make_server, client):
    srv = make_server(_one_provider("wavespeed", latency_min_s=0.5, latency_max_s=0.5, sync_mode_timeout_s=0.1))
    r = _submit(client, srv, "wavespeed", enable_sync_mode=True)
    assert r.status_code == 504
    body = r.json()
    assert body["code"] == 5004 and body["message"] == "Sync mode timed out"
    data = body["data"]
    assert data["status"] == "processing" and data["code"] == 5004 and data["error"] == "Sync mode timed out"
    assert data["urls"]["get"].endswith(f"/api/v3/predictions/{data['id']}/result")
    # the task keeps running and can be recovered by id
    assert poll_until_terminal(client, srv, "wavespeed", data["id"])["data"]["status"] == "completed"


def test_wavespeed_base64_output(make_server, client):
    import base64

    srv = make_server()
    r = _submit(client, srv, "wavespeed", enable_base64_output=True)
    done = poll_until_terminal(client, srv, "wavespeed", r.json()["data"]["id"])
    assert base64.b64decode(done["data"]["outputs"][0])[4:8] == b"ftyp"
    url = srv.put_asset("frame.png", image_bytes())
    r = client.post(
        srv.provider_url("wavespeed") + SUBMIT_PATHS["wavespeed"] + "?webhook=https://example.com/hook",
        json=submit_body("wavespeed", url, enable_base64_output=True),
    )
    assert r.status_code == 400 and "base64" in r.json()["error"]


# --- counters, submit keys, control routes --------------------------------------------------------


def test_counters_and_submits_by_key(make_server, client):
    srv = make_server()
    url = srv.put_asset("frame.png", image_bytes())
    submit = srv.provider_url("vibedream") + SUBMIT_PATHS["vibedream"]
    a = client.post(submit, json=submit_body("vibedream", url, seed=1)).json()["id"]
    client.post(submit, json=submit_body("vibedream", url, seed=1))
    client.post(submit, json=submit_body("vibedream", url, seed=2))
    client.post(submit, json=submit_body("vibedream", url, seed=5000))  # 400: not counted as accepted
    poll_until_terminal(client, srv, "vibedream", a)
    client.get(srv.provider_url("vibedream") + "/nowhere")
    stats = client.get(srv.base_url + "/_sim/stats").json()
    counts = stats["requests"]["vibedream"]
    assert counts["submit"] == 4 and counts["status"] >= 1 and counts["other"] == 1
    assert sorted(stats["submits_by_key"].values()) == [1, 2]
    assert stats["submits_by_provider"]["vibedream"] == stats["submits_by_key"]
    assert stats["tasks"]["vibedream"] == 3
    # the key is the sha256 of the canonical body with the image replaced by its sha256
    import hashlib

    image_sha = hashlib.sha256(image_bytes()).hexdigest()
    expected = submit_key(submit_body("vibedream", f"sha256:{image_sha}", seed=1))
    assert stats["submits_by_key"][expected] == 2
    assert sum(srv.sim.submits_by_key(accepted_only=False).values()) == 4
    # the same image by another URL is the same request
    url2 = srv.put_asset("copy.png", image_bytes())
    client.post(submit, json=submit_body("vibedream", url2, seed=1))
    assert srv.sim.submits_by_key()[expected] == 3


def test_control_routes(make_server, client):
    srv = make_server()
    cfg = fast_config(faults=[FaultRule(provider="novita", endpoint="submit", kind="http_429")])
    r = client.put(srv.base_url + "/_sim/config", content=cfg.model_dump_json())
    assert r.status_code == 200
    assert client.get(srv.base_url + "/_sim/config").json()["faults"][0]["kind"] == "http_429"
    assert _submit(client, srv, "novita").status_code == 429
    bad = client.put(srv.base_url + "/_sim/config", json={"faults": [{"kind": "nope"}]})
    assert bad.status_code == 422
    client.put(srv.base_url + "/_sim/config", content=fast_config().model_dump_json())
    task_id = _submit(client, srv, "novita").json()["task_id"]
    tasks = client.get(srv.base_url + "/_sim/tasks").json()["tasks"]
    assert [t["id"] for t in tasks] == [task_id]
    assert {"phase", "outcome", "width", "height", "seed", "provider"} <= set(tasks[0])
    assert client.post(srv.base_url + "/_sim/reset").json() == {"ok": True}
    assert client.get(srv.base_url + "/_sim/tasks").json()["tasks"] == []
    stats = client.get(srv.base_url + "/_sim/stats").json()
    assert all(n == 0 for p in PROVIDERS for n in stats["requests"][p].values())
    assert stats["submits_by_key"] == {}


def test_seed_handling(make_server, client):
    srv = make_server()
    _submit(client, srv, "jiekou", seed=42)
    _submit(client, srv, "vibedream", seed=-1)
    by_provider = {t["provider"]: t for t in srv.sim.tasks()}
    assert by_provider["jiekou"]["seed"] == 42
    assert 0 <= by_provider["vibedream"]["seed"] <= 1000


@pytest.mark.parametrize("provider", PROVIDERS)
def test_latency_is_honoured(make_server, client, provider):
    srv = make_server(fast_config(0.3))
    t0 = time.monotonic()
    task_id = task_id_of(provider, _submit(client, srv, provider).json())
    body = poll_until_terminal(client, srv, provider, task_id)
    assert time.monotonic() - t0 >= 0.3
    assert status_of(provider, body) in ("COMPLETED", "completed", "TASK_STATUS_SUCCEED", "succeeded")
