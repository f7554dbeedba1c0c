"""Secrets and downloads: nothing leaks a key or a presigned signature; downloads go only where allowed.

1. The engine over real loopback HTTP: gateways that echo our Authorization header, download
   redirects (to file://, around in circles, back to the CDN), private hosts when not simulated.
2. A full ``seedance-pipeline demo-data`` + ``run`` in subprocesses, all five providers routed to a
   simulator that only accepts sentinel keys, on S3 storage (moto's server: URL-only providers get
   presigned image URLs), one gateway echoing the key back: every file the run left (storage objects,
   the Dagster home with its SQLite event log and compute logs) and its stdout/stderr are scanned for
   the sentinels and for presigned-URL signatures.
"""

from __future__ import annotations

import asyncio
import functools
import os
import subprocess
import sys
import uuid
from pathlib import Path

import fsspec
import pytest

from seedance_pipeline.clip.prepare import build_request, prepare
from seedance_pipeline.core import settings
from seedance_pipeline.core.errors import AcceptanceUnknown, DownloadFailed, SubmitRejected
from seedance_pipeline.providers import ADAPTER_CLASSES, PROVIDERS, get_adapter
from seedance_pipeline.providers.engine import MAX_REDIRECTS, ClientSettings, ProviderClient, scrub
from seedance_pipeline.simulator.config import FaultRule
from seedance_pipeline.simulator.server import SimulatorServer
from seedance_pipeline.storage.atomic import atomic_writer_async
from seedance_pipeline_tests.conftest import fast_config, png
from seedance_pipeline_tests.s3server import DUMMY_ENV, object_keys

KEY = f"sk-sentinel-{uuid.uuid4().hex}"
SIGNATURE_MARKERS = ("X-Amz-Signature", "X-Amz-Credential", "Signature=")


def _client(srv: SimulatorServer, provider: str, **knobs) -> ProviderClient:
    return ProviderClient(
        get_adapter(provider),
        KEY,
        base_url=srv.provider_url(provider),
        settings=ClientSettings(
            max_retries=1, backoff_base_s=0.01, expected_latency_s=0.2, min_poll_interval_s=0.05, **knobs
        ),
    )


def _prepared(srv: SimulatorServer, provider: str, tmp_path: Path):
    path = tmp_path / "frame.png"
    path.write_bytes(png())
    image = srv.put_asset("frame.png", png()) if not get_adapter(provider).capabilities.accepts_data_uri else str(path)
    return prepare(
        get_adapter(provider), build_request(prompt="a calm lake", image=image, duration=4, resolution="480p", seed=7)
    )


# -- 1. the engine --------------------------------------------------------------------------------------


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("status,error", [(400, SubmitRejected), (500, AcceptanceUnknown)])
def test_errors_that_echo_our_headers_are_scrubbed(provider, status, error, tmp_path):
    rule = FaultRule(provider=provider, endpoint="submit", kind="echo_auth", status=status, times=1)
    with SimulatorServer(fast_config(faults=[rule], api_keys=[KEY])) as srv:
        prepared = _prepared(srv, provider, tmp_path)

        async def go():
            async with _client(srv, provider) as client:
                await client.submit(prepared.wire)

        with pytest.raises(error) as info:
            asyncio.run(go())
        assert srv.sim.stats()["faults"][0]["applied"] == 1  # the gateway did echo the header
    text = str(info.value)
    assert KEY not in text and "Bearer ***" in text, text
    assert "authorization" in text.lower()  # the message still says what happened


def _finished_task(srv: SimulatorServer, provider: str, tmp_path: Path):
    prepared = _prepared(srv, provider, tmp_path)

    async def go():
        async with _client(srv, provider) as client:
            snap = await client.submit(prepared.wire)
            return await client.wait(snap)

    return asyncio.run(go())


def _download(srv: SimulatorServer, provider: str, url: str, dest: Path, **knobs):
    async def go():
        async with _client(srv, provider, **knobs) as client:
            try:
                sink = functools.partial(atomic_writer_async, fsspec.filesystem("file"), str(dest))
                return await client.download(url, sink), client.requests_sent
            except DownloadFailed as exc:
                return exc, client.requests_sent

    return asyncio.run(go())


@pytest.mark.parametrize("location", ["file:///etc/passwd", "ftp://127.0.0.1/clip.mp4", "gopher://x/1"])
def test_redirect_to_another_scheme_is_refused(location, tmp_path):
    rule = FaultRule(provider="jiekou", endpoint="download", kind="redirect", location=location)
    with SimulatorServer(fast_config(faults=[rule])) as srv:
        snap = _finished_task(srv, "jiekou", tmp_path)
        dest = tmp_path / "out" / "clip.mp4"
        result, sent = _download(srv, "jiekou", snap.output_url, dest)
    assert isinstance(result, DownloadFailed) and not result.url_expired
    scheme = location.split(":", 1)[0]
    assert f"refusing to follow a redirect to a non-http(s) URL ({scheme} scheme)" in str(result)
    assert sent["download"] == 1  # the refused target was never requested
    assert not dest.exists() and list(dest.parent.glob("*")) == []  # nothing half-written


def test_redirects_within_http_are_followed_up_to_five_hops(tmp_path):
    rules = [FaultRule(provider="novita", endpoint="download", kind="redirect", times=MAX_REDIRECTS)]
    with SimulatorServer(fast_config(faults=rules)) as srv:
        snap = _finished_task(srv, "novita", tmp_path)
        dest = tmp_path / "clip.mp4"
        result, sent = _download(srv, "novita", snap.output_url, dest)
    assert not isinstance(result, Exception), result
    assert sent["download"] == MAX_REDIRECTS + 1 and dest.read_bytes()[4:8] == b"ftyp"


def test_a_redirect_loop_is_refused(tmp_path):
    rules = [FaultRule(provider="vibedream", endpoint="download", kind="redirect")]  # every time
    with SimulatorServer(fast_config(faults=rules)) as srv:
        snap = _finished_task(srv, "vibedream", tmp_path)
        dest = tmp_path / "clip.mp4"
        result, sent = _download(srv, "vibedream", snap.output_url, dest)
    assert isinstance(result, DownloadFailed) and f"redirected more than {MAX_REDIRECTS} times" in str(result)
    assert sent["download"] == MAX_REDIRECTS + 1 and not dest.exists()


def test_a_simulated_output_on_loopback_is_refused_when_private_hosts_are_not_allowed(tmp_path):
    with SimulatorServer(fast_config()) as srv:
        snap = _finished_task(srv, "runpod", tmp_path)
        result, sent = _download(srv, "runpod", snap.output_url, tmp_path / "c.mp4", allow_private_hosts=False)
    assert isinstance(result, DownloadFailed) and "private or loopback host (127.0.0.1)" in str(result)
    assert sent["download"] == 0


@pytest.mark.parametrize(
    "url,rule",
    [
        ("file:///etc/passwd", "non-http(s) URL (file scheme)"),
        ("s3://bucket/clip.mp4", "non-http(s) URL (s3 scheme)"),
        ("http://169.254.169.254/latest/meta-data/", "private or loopback host (169.254.169.254)"),
        ("http://10.1.2.3/clip.mp4", "private or loopback host (10.1.2.3)"),
        ("http://localhost:8080/clip.mp4", "private or loopback host (localhost)"),
        ("http://[::1]/clip.mp4", "private or loopback host (::1)"),
    ],
)
def test_a_real_provider_client_refuses_private_and_non_http_urls(url, rule):
    for provider in PROVIDERS:  # real base URLs: private hosts are not allowed by default
        client = ProviderClient(get_adapter(provider), KEY)
        with pytest.raises(DownloadFailed) as info:
            client.check_download_url(url)
        assert rule in str(info.value)
        asyncio.run(client.aclose())


def test_scrub_removes_keys_tokens_and_url_queries():
    presigned = (
        "https://bucket.s3.amazonaws.com/team/images/a.png?X-Amz-Algorithm=AWS4-HMAC-SHA256"
        "&X-Amz-Credential=AKIA%2F20250101&X-Amz-Expires=3600&X-Amz-Signature=0123abcd"
    )
    text = f'image {presigned} could not be fetched; headers {{"authorization": "Bearer other-token"}} key={KEY}'
    out = scrub(text, (KEY,))
    assert KEY not in out and "other-token" not in out
    assert not any(m in out for m in SIGNATURE_MARKERS) and "X-Amz-Expires" not in out
    assert "https://bucket.s3.amazonaws.com/team/images/a.png?…" in out and "could not be fetched" in out


# -- 2. a full demo with sentinel keys --------------------------------------------------------------------

EXTRA_PROMPTS = {  # the demo's prompts use Novita and RunPod; these bring in the other four
    "ws": "text: a slow zoom\nimages: [tower]\nprovider: wavespeed\nduration: 4\nresolution: 480p\nseed: 3\n",
    "jk": "text: a slow tilt\nimages: [tower]\nprovider: jiekou\nduration: 4\nresolution: 480p\nseed: 3\n",
    "vd": "text: a slow orbit\nimages: [tower]\nprovider: vibedream\nduration: 4\nresolution: 480p\nseed: 3\n",
    "ark": "text: a slow crane\nimages: [tower]\nprovider: modelark\nduration: 4\nresolution: 480p\nseed: 3\n",
    "echo": "text: gateway trouble\nimages: [tiles]\nprovider: jiekou\nduration: 4\nresolution: 480p\nseed: 9\n",
}


def _scan(blobs: dict[str, bytes], needles: list[str]) -> list[str]:
    hits = []
    for name, data in blobs.items():
        for needle in needles:
            if needle.encode() in data:
                hits.append(f"{needle[:24]}... in {name}")
    return hits


@pytest.mark.slow
def test_full_demo_with_sentinel_keys_leaks_nothing(tmp_path, s3, s3_endpoint, bucket):
    keys = {p: f"sk-sentinel-{p}-{uuid.uuid4().hex}" for p in PROVIDERS}
    # The "echo" prompt's submit hits a gateway that echoes the request headers (the key) in a 400.
    echo = FaultRule(provider="jiekou", endpoint="submit", kind="echo_auth", status=400, skip=0, times=1)
    config = fast_config(api_keys=list(keys.values()), faults=[echo])
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    cli = str(Path(sys.executable).parent / "seedance-pipeline")
    with SimulatorServer(config) as srv:
        env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY") and not k.startswith("SEEDANCE_")}
        env.update(DUMMY_ENV)
        env.update(
            {
                "DAGSTER_HOME": str(home),
                "SEEDANCE_STORAGE_URL": f"s3://{bucket}/demo",
                "SEEDANCE_S3_ENDPOINT_URL": s3_endpoint,
                "SEEDANCE_EXPECTED_LATENCY_S": "0.3",
                "AWS_EC2_METADATA_DISABLED": "true",
                "AWS_CONFIG_FILE": str(tmp_path / "none"),
                "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
            }
        )
        for p in PROVIDERS:
            env[ADAPTER_CLASSES[p].env_key] = keys[p]
            env[settings.base_url(p).name] = srv.provider_url(p)
        outputs = {}
        data = subprocess.run([cli, "demo-data"], env=env, cwd=tmp_path, capture_output=True, timeout=120)
        assert data.returncode == 0, data.stderr.decode()
        for name, text in EXTRA_PROMPTS.items():
            s3.put_object(Bucket=bucket, Key=f"demo/prompts/{name}.yaml", Body=text.encode())
        run = subprocess.run([cli, "run"], env=env, cwd=tmp_path, capture_output=True, timeout=300)
        outputs.update(
            {
                "demo-data stdout": data.stdout,
                "demo-data stderr": data.stderr,
                "run stdout": run.stdout,
                "run stderr": run.stderr,
            }
        )
        stats = srv.sim.stats()
    stdout = run.stdout.decode()
    # Every provider was reached with its sentinel key (the simulator accepts only those), and made clips.
    assert all(stats["tasks"][p] >= 1 for p in PROVIDERS), (stats["tasks"], stdout, run.stderr.decode()[-3000:])
    assert run.returncode == 1 and "tiles|echo" in stdout and "Bearer ***" in stdout, stdout  # the echo, scrubbed
    for clip in ("tower|ws", "tower|jk", "tower|vd", "tower|ark", "mountains|quick-pan", "tower|dusk-dolly"):
        assert clip in stdout
    # Collect everything the run left behind.
    blobs = dict(outputs)
    for key in object_keys(s3, bucket):
        blobs[f"s3://{bucket}/{key}"] = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    blobs.update({str(p): p.read_bytes() for p in files})
    assert any(name.endswith(".db") for name in blobs), "the SQLite event log was scanned"
    assert any("/tasks/days/" in name for name in blobs) and any(
        name.endswith(".json") and "/clips/" in name for name in blobs
    )
    assert any(b"image_sent_as" in d and b"presigned-url" in d for d in blobs.values())  # RunPod got a presigned URL
    hits = _scan(blobs, [*keys.values(), *SIGNATURE_MARKERS])
    assert hits == [], hits
