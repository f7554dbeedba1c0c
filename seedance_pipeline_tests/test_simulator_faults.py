"""Fault injection as a client sees it over real HTTP (fast stand-in renderer: protocol shape only)."""

from __future__ import annotations

import time

import httpx
import pytest

from seedance_pipeline.simulator import FaultRule
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
    video_url_of,
)


def _submit(client, srv, provider, **overrides):
    url = srv.put_asset("frame.png", image_bytes())
    return client.post(
        srv.provider_url(provider) + SUBMIT_PATHS[provider], json=submit_body(provider, url, **overrides)
    )


def _completed_video_url(client, srv, provider):
    r = _submit(client, srv, provider)
    assert r.status_code == 200, r.text
    result = poll_until_terminal(client, srv, provider, task_id_of(provider, r.json()))
    return video_url_of(provider, result)


# --- HTTP errors --------------------------------------------------------------------------------


@pytest.mark.parametrize("provider", PROVIDERS)
def test_429_with_and_without_retry_after(make_server, client, provider):
    faults = [
        FaultRule(provider=provider, endpoint="submit", kind="http_429", times=1, retry_after="2"),
        FaultRule(provider=provider, endpoint="submit", kind="http_429", times=1),
    ]
    srv = make_server(fast_config(faults=faults))
    first = _submit(client, srv, provider)
    assert first.status_code == 429 and first.headers["retry-after"] == "2"
    second = _submit(client, srv, provider)
    assert second.status_code == 429 and "retry-after" not in second.headers
    body = second.json()
    if provider in ("jiekou", "novita"):
        assert body["reason"] == "RATE_LIMIT_EXCEEDED" and body["code"] == 429
    elif provider == "wavespeed":
        assert body["code"] == 429 and body["message"]
    else:
        assert set(body) == {"error"}
    assert srv.sim.tasks() == []
    third = _submit(client, srv, provider)
    assert third.status_code == 200
    stats = srv.sim.stats()
    assert stats["requests"][provider]["submit"] == 3
    assert list(stats["submits_by_key"].values()) == [1]
    assert [f["applied"] for f in stats["faults"]] == [1, 1]


def test_http_status_uses_provider_error_body(make_server, client):
    faults = [
        FaultRule(provider="jiekou", endpoint="status", kind="http_status", status=503, times=1, retry_after="1"),
        FaultRule(provider="runpod", endpoint="status", kind="http_status", status=500, times=1),
    ]
    srv = make_server(fast_config(faults=faults))
    for provider, status, check in (
        ("jiekou", 503, lambda b: b["reason"] == "SERVICE_NOT_AVAILABLE"),
        ("runpod", 500, lambda b: set(b) == {"error"}),
    ):
        task_id = task_id_of(provider, _submit(client, srv, provider).json())
        r = client.get(srv.provider_url(provider) + poll_path(provider, task_id))
        assert r.status_code == status and check(r.json())
        # the next poll is clean
        assert client.get(srv.provider_url(provider) + poll_path(provider, task_id)).status_code == 200


def test_skip_and_times(make_server, client):
    faults = [FaultRule(provider="vibedream", endpoint="status", kind="http_status", status=502, skip=2, times=2)]
    srv = make_server(fast_config(faults=faults))
    task_id = task_id_of("vibedream", _submit(client, srv, "vibedream").json())
    codes = [client.get(srv.provider_url("vibedream") + poll_path("vibedream", task_id)).status_code for _ in range(6)]
    assert codes == [200, 200, 502, 502, 200, 200]


def test_probability_is_seeded(make_server, client):
    def codes() -> list[int]:
        rule = FaultRule(provider="wavespeed", endpoint="status", kind="http_status", status=500, probability=0.5)
        srv = make_server(fast_config(faults=[rule]))
        return [
            client.get(srv.provider_url("wavespeed") + "/api/v3/predictions/x/result").status_code for _ in range(20)
        ]

    first, second = codes(), codes()
    assert first == second
    assert set(first) == {500, 404}


# --- connection drops -------------------------------------------------------------------------


@pytest.mark.parametrize("provider", PROVIDERS)
def test_drop_before_gives_transport_error_and_no_task(make_server, client, provider):
    srv = make_server(
        fast_config(faults=[FaultRule(provider=provider, endpoint="submit", kind="drop_before", times=1)])
    )
    with pytest.raises(httpx.TransportError) as info:
        _submit(client, srv, provider)
    assert isinstance(info.value, (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError))
    assert srv.sim.tasks() == []
    assert srv.sim.submits_by_key() == {}
    assert srv.sim.stats()["requests"][provider]["submit"] == 1
    # the server is fine afterwards
    assert _submit(client, srv, provider).status_code == 200


@pytest.mark.parametrize("provider", PROVIDERS)
def test_drop_after_creates_the_task_but_sends_nothing(make_server, client, provider):
    srv = make_server(fast_config(faults=[FaultRule(provider=provider, endpoint="submit", kind="drop_after", times=1)]))
    with pytest.raises(httpx.TransportError):
        _submit(client, srv, provider)
    (task,) = srv.sim.tasks()
    assert list(srv.sim.submits_by_key().values()) == [1]
    done = poll_until_terminal(client, srv, provider, task["id"])
    assert status_of(provider, done) in ("COMPLETED", "completed", "TASK_STATUS_SUCCEED", "succeeded")


def test_drop_on_status_and_raw_socket_sees_no_response(make_server, client):
    """The client gets no HTTP bytes at all: the connection is reset/closed."""
    import socket

    srv = make_server(fast_config(faults=[FaultRule(provider="novita", endpoint="status", kind="drop_before")]))
    with pytest.raises(httpx.TransportError):
        client.get(srv.provider_url("novita") + poll_path("novita", "x"))
    with socket.create_connection((srv.host, srv.port), timeout=5) as s:
        s.sendall(b"GET /novita/v3/async/task-result?task_id=x HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer k\r\n\r\n")
        try:
            data = s.recv(1024)
        except ConnectionResetError:
            data = b""
    assert data == b""


# --- slow answers -------------------------------------------------------------------------------


def test_delay_and_timed_out_submit_still_creates_task(make_server, client):
    srv = make_server(
        fast_config(faults=[FaultRule(provider="wavespeed", endpoint="submit", kind="delay", delay_s=0.4, times=2)])
    )
    t0 = time.monotonic()
    assert _submit(client, srv, "wavespeed").status_code == 200
    assert time.monotonic() - t0 >= 0.4
    url = srv.put_asset("frame.png", image_bytes())
    with pytest.raises(httpx.ReadTimeout):
        client.post(
            srv.provider_url("wavespeed") + SUBMIT_PATHS["wavespeed"],
            json=submit_body("wavespeed", url, seed=5),
            timeout=0.15,
        )
    # the POST the client gave up on still creates (and would bill) a task
    tasks = [t for t in srv.sim.tasks()]
    assert len(tasks) == 1
    from seedance_pipeline_tests.simulator_support import wait_for

    wait_for(srv.sim.tasks, lambda ts: len(ts) == 2, timeout_s=5)


def test_trickle_spreads_the_body(make_server, client):
    srv = make_server(
        fast_config(faults=[FaultRule(provider="runpod", endpoint="status", kind="trickle", delay_s=0.5)])
    )
    job_id = _submit(client, srv, "runpod").json()["id"]
    t0 = time.monotonic()
    chunks = []
    with client.stream("GET", srv.provider_url("runpod") + poll_path("runpod", job_id)) as r:
        for chunk in r.iter_raw():
            chunks.append((time.monotonic() - t0, chunk))
    assert r.status_code == 200
    assert chunks[-1][0] >= 0.45 and len(chunks) > 1
    import json

    assert json.loads(b"".join(c for _, c in chunks))["id"] == job_id


# --- downloads ----------------------------------------------------------------------------------


def test_truncate_download(make_server, client):
    srv = make_server(fast_config(faults=[FaultRule(endpoint="download", kind="truncate", times=1)]))
    url = _completed_video_url(client, srv, "jiekou")
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.get(url, trust_env=False)
    with httpx.stream("GET", url, trust_env=False) as r:  # clean afterwards
        assert int(r.headers["content-length"]) == len(r.read())


def test_truncate_announces_full_length(make_server, client):
    srv = make_server(fast_config(faults=[FaultRule(endpoint="download", kind="truncate", times=1)]))
    url = _completed_video_url(client, srv, "vibedream")
    received = b""
    with pytest.raises(httpx.RemoteProtocolError), httpx.stream("GET", url, trust_env=False) as r:
        announced = int(r.headers["content-length"])
        for chunk in r.iter_raw():
            received += chunk
    assert 0 < len(received) < announced


def test_corrupt_download(make_server, client):
    srv = make_server(
        fast_config(faults=[FaultRule(provider="wavespeed", endpoint="download", kind="corrupt", times=1)])
    )
    url = _completed_video_url(client, srv, "wavespeed")
    bad = httpx.get(url, trust_env=False)
    good = httpx.get(url, trust_env=False)
    assert bad.status_code == 200 and good.status_code == 200
    assert len(bad.content) == len(good.content)
    assert bad.content[4:8] != b"ftyp" and good.content[4:8] == b"ftyp"


def test_expire_url_fault_and_configured_url_ttl(make_server, client):
    srv = make_server(
        fast_config(faults=[FaultRule(provider="runpod", endpoint="download", kind="expire_url", times=1)])
    )
    url = _completed_video_url(client, srv, "runpod")
    r = httpx.get(url, trust_env=False)
    assert r.status_code == 403 and b"AccessDenied" in r.content
    assert httpx.get(url, trust_env=False).status_code == 200

    srv2 = make_server(fast_config(output_url_ttl_s=0.3))
    url = _completed_video_url(client, srv2, "novita")
    assert "?expires=" in url
    assert httpx.get(url, trust_env=False).status_code == 200
    wait_403 = lambda: httpx.get(url, trust_env=False).status_code  # noqa: E731
    from seedance_pipeline_tests.simulator_support import wait_for

    assert wait_for(wait_403, lambda code: code == 403, timeout_s=5) == 403
    result = client.get(srv2.provider_url("novita") + poll_path("novita", srv2.sim.tasks()[0]["id"])).json()
    assert result["videos"][0]["video_url_ttl"] == "1"  # whole seconds, rounded up


# --- task outcomes ------------------------------------------------------------------------------

EXPECTED_FAILURE = {
    # provider: (moderation, expire, fail) -> (status, text that must appear)
    "runpod": {
        "moderation": ("FAILED", "Error submitting task: 400, {"),
        "expire": ("TIMED_OUT", ""),
        "fail": ("FAILED", "Error processing task: 500"),
    },
    "wavespeed": {
        "moderation": ("failed", "sensitive"),
        "expire": ("failed", "expired"),
        "fail": ("failed", "internal error"),
    },
    "jiekou": {
        "moderation": ("TASK_STATUS_FAILED", "sensitive"),
        "expire": ("TASK_STATUS_FAILED", "expired"),
        "fail": ("TASK_STATUS_FAILED", "internal error"),
    },
    "novita": {
        "moderation": ("TASK_STATUS_FAILED", "SensitiveContentDetected"),
        "expire": ("TASK_STATUS_FAILED", "expired"),
        "fail": ("TASK_STATUS_FAILED", "internal error"),
    },
    "vibedream": {
        "moderation": ("failed", "Your request was flagged by content moderation. Please modify your prompt."),
        "expire": ("failed", "expired"),
        "fail": ("failed", "Generation failed"),
    },
    "modelark": {  # Ark's own states and codes (docs/providers.md §7.3, §7.4)
        "moderation": ("failed", "sensitive"),
        "expire": ("expired", "expired"),
        "fail": ("failed", "internal error"),
    },
}


def _failure_text(provider: str, body: dict) -> str:
    if provider == "runpod":
        return body.get("error", "")
    if provider == "wavespeed":
        return body["data"]["error"]
    if provider in ("jiekou", "novita"):
        return body["task"]["reason"]
    if provider == "modelark":
        return body["error"]["message"]
    return body["error"]


@pytest.mark.parametrize("outcome", ["moderation", "expire", "fail"])
@pytest.mark.parametrize("provider", PROVIDERS)
def test_task_outcomes_by_fault_and_by_marker(make_server, client, provider, outcome):
    srv = make_server(fast_config(faults=[FaultRule(provider=provider, endpoint="submit", kind=outcome, times=1)]))
    by_fault = _submit(client, srv, provider)
    by_marker = _submit(client, srv, provider, prompt=f"a cat [sim:{outcome}]")
    clean = _submit(client, srv, provider)
    status, text = EXPECTED_FAILURE[provider][outcome]
    for r in (by_fault, by_marker):
        assert r.status_code == 200
        body = poll_until_terminal(client, srv, provider, task_id_of(provider, r.json()))
        assert status_of(provider, body) == status
        assert text in _failure_text(provider, body)
        if provider == "vibedream":
            assert body["outputs"] is None
        if provider in ("jiekou", "novita"):
            assert body["videos"] == []
        if provider == "runpod":
            assert "output" not in body
    ok = poll_until_terminal(client, srv, provider, task_id_of(provider, clean.json()))
    assert status_of(provider, ok) in ("COMPLETED", "completed", "TASK_STATUS_SUCCEED", "succeeded")


def test_runpod_moderation_error_embeds_upstream_json(make_server, client):
    import json

    srv = make_server()
    r = _submit(client, srv, "runpod", prompt="x [sim:moderation]", generate_audio=True)
    body = poll_until_terminal(client, srv, "runpod", r.json()["id"])
    prefix, _, inner = body["error"].partition(", ")
    assert prefix == "Error submitting task: 400"
    inner_json = json.loads(inner)
    assert inner_json["code"] == 400 and "audio" in inner_json["message"]


# --- outages, echoing gateways, redirects ------------------------------------------------------


def _wait_until(predicate, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_down_window_answers_503_on_every_endpoint_then_recovers(make_server, client, provider):
    rule = FaultRule(provider=provider, kind="down", duration_s=2.0, times=1, retry_after="1")
    srv = make_server(fast_config(faults=[rule]))
    # The window opens when the simulator sees the first request: after ``sent``, before ``answered``.
    sent = time.monotonic()
    first = _submit(client, srv, provider)
    answered = time.monotonic()
    assert first.status_code == 503 and first.headers["retry-after"] == "1"
    body = first.json()
    if provider in ("jiekou", "novita"):
        assert body["reason"] == "SERVICE_NOT_AVAILABLE" and body["code"] == 503
    elif provider == "wavespeed":
        assert body["code"] == 503 and body["message"]
    else:
        assert set(body) == {"error"}
    # every request in the window, whatever the endpoint, gets the same answer; no task is created
    assert client.get(srv.provider_url(provider) + poll_path(provider, "x")).status_code == 503
    assert _submit(client, srv, provider).status_code == 503
    assert time.monotonic() - sent < 2.0 and srv.sim.tasks() == []  # 2 s: all three fell in the window, even under load
    # another provider is not affected
    other = next(p for p in PROVIDERS if p != provider)
    assert _submit(client, srv, other).status_code == 200
    _wait_until(lambda: time.monotonic() - answered > 2.05)
    assert _submit(client, srv, provider).status_code == 200  # the outage is over; times=1: no second one
    fault = srv.sim.stats()["faults"][0]
    assert fault["outages"] == 1 and fault["applied"] == 3


def test_down_with_a_status_and_repeated_outages(make_server, client):
    rule = FaultRule(provider="novita", endpoint="submit", kind="down", status=502, duration_s=0.2, times=2, skip=1)
    srv = make_server(fast_config(faults=[rule]))
    assert _submit(client, srv, "novita").status_code == 200  # skipped
    assert _submit(client, srv, "novita").status_code == 502  # outage 1 starts
    t0 = time.monotonic()
    _wait_until(lambda: time.monotonic() - t0 > 0.25)
    assert _submit(client, srv, "novita").status_code == 502  # outage 2 starts
    _wait_until(lambda: time.monotonic() - t0 > 0.5)
    assert _submit(client, srv, "novita").status_code == 200
    assert srv.sim.stats()["faults"][0]["outages"] == 2


@pytest.mark.parametrize("provider", PROVIDERS)
def test_echo_auth_puts_the_authorization_header_in_the_error_body(make_server, client, provider):
    srv = make_server(fast_config(faults=[FaultRule(provider=provider, endpoint="submit", kind="echo_auth", times=1)]))
    r = _submit(client, srv, provider)
    assert r.status_code == 500
    assert client.headers["authorization"] in r.text  # the key, echoed by the "gateway"
    body = r.json()
    assert (body["reason"] == "CREATE_TASK_FAILED") if provider in ("jiekou", "novita") else True
    assert ("error" in body) if provider in ("runpod", "vibedream", "modelark") else ("message" in body)
    assert _submit(client, srv, provider).status_code == 200


def test_redirect_download_to_a_file_url_and_back_to_itself(make_server, client):
    faults = [
        FaultRule(provider="jiekou", endpoint="download", kind="redirect", location="file:///etc/passwd", times=1),
        FaultRule(provider="novita", endpoint="download", kind="redirect", times=2),
    ]
    srv = make_server(fast_config(faults=faults))
    url = _completed_video_url(client, srv, "jiekou")
    r = httpx.get(url, trust_env=False)
    assert r.status_code == 302 and r.headers["location"] == "file:///etc/passwd" and not r.content
    assert httpx.get(url, trust_env=False).status_code == 200
    url = _completed_video_url(client, srv, "novita")
    hop1 = httpx.get(url, trust_env=False)
    assert hop1.status_code == 302 and hop1.headers["location"].startswith(url.split("?")[0])
    assert "redirected=1" in hop1.headers["location"]
    hop2 = httpx.get(hop1.headers["location"], trust_env=False)
    assert hop2.status_code == 302 and "redirected=2" in hop2.headers["location"]
    final = httpx.get(hop2.headers["location"], trust_env=False)
    assert final.status_code == 200 and final.content[4:8] == b"ftyp"


def test_redirect_applies_to_downloads_only(make_server, client):
    srv = make_server(fast_config(faults=[FaultRule(kind="redirect", location="file:///etc/passwd")]))
    r = _submit(client, srv, "wavespeed")
    assert r.status_code == 200
    assert srv.sim.stats()["faults"][0]["applied"] == 0


def test_a_request_sent_but_not_yet_handled_keeps_the_simulator_from_being_quiet(make_server):
    """``in_flight`` counts a request once the app has it; ``quiet`` also counts one still being received, as a
    killed client's last submit is (the lifecycle campaign waits for ``quiet`` before the user looks)."""
    import socket

    srv = make_server()
    assert srv.quiet()
    with socket.create_connection((srv.host, srv.port), timeout=5) as s:
        s.sendall(b"POST /novita/v3/async/seedance-v1.5-pro-i2v HTTP/1.1\r\nHost: x\r\n")  # headers not ended
        deadline = time.monotonic() + 5
        while srv.quiet() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not srv.quiet() and srv.sim.in_flight() == 0
    deadline = time.monotonic() + 5
    while not srv.quiet() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert srv.quiet()


def test_the_accept_queue_counts_connections_the_server_has_not_accepted():
    import socket

    from seedance_pipeline.simulator.server import _accept_queue

    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen(8)
        assert _accept_queue(listening) == 0
        waiting = [socket.create_connection(listening.getsockname(), timeout=5) for _ in range(3)]
        assert _accept_queue(listening) == 3
        accepted, _ = listening.accept()
        assert _accept_queue(listening) == 2
        for s in [*waiting, accepted]:
            s.close()
