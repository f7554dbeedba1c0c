"""The ``seedance-pipeline generate`` contract, through the real console script in a subprocess.

Exit codes: 0 stored, 2 rejected before anything was sent, 1 failed after sending. With ``--json``
the last stdout line is one JSON object. Each test has its own simulator and tmp_path.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

import seedance_pipeline.cli as cli_module
from seedance_pipeline.clip.probe import probe_video
from seedance_pipeline.core import settings
from seedance_pipeline.core.mp4 import looks_like_mp4
from seedance_pipeline.providers import PROVIDERS, get_adapter
from seedance_pipeline.simulator import vibedream as sim_vibedream
from seedance_pipeline.simulator.config import ProviderSimConfig, SimConfig
from seedance_pipeline.simulator.server import SimulatorServer
from seedance_pipeline_tests.simulator_support import ESTIMATED_USD, REPORTED_USD

URL_ONLY = frozenset({"runpod", "wavespeed", "vibedream"})
SUMMARY_KEYS = {"provider", "task_id", "status", "output", "estimated_cost_usd", "reported_cost_usd"}
API_KEY = "sk-cli-test-0123456789abcdef"
TIMEOUT_S = 60


def _cli_command() -> list[str]:
    """``python -m seedance_pipeline.cli`` only if the module runs itself; else the installed script."""
    if re.search(r"""^if __name__ == ["']__main__["']:""", Path(cli_module.__file__).read_text(encoding="utf-8"), re.M):
        return [sys.executable, "-m", "seedance_pipeline.cli"]
    script = Path(sys.executable).parent / ("seedance-pipeline.exe" if os.name == "nt" else "seedance-pipeline")
    if script.exists():
        return [str(script)]
    # Not installed as a console script (e.g. a bare checkout on sys.path): call the same entry point.
    return [sys.executable, "-c", "from seedance_pipeline.cli import main; main()"]


CLI = _cli_command()


def png(size: tuple[int, int] = (800, 450)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (90, 160, 60)).save(buf, format="PNG")
    return buf.getvalue()


def clean_env(**extra: str) -> dict[str, str]:
    """The environment minus any provider key or base URL the developer's shell may carry."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not (k.endswith("_API_KEY") or (k.startswith("SEEDANCE_") and k.endswith("_BASE_URL")))
    }
    return {**env, **extra}


def run_generate(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*CLI, "generate", *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env or clean_env(),
        timeout=TIMEOUT_S,
    )


def last_json(proc: subprocess.CompletedProcess) -> dict[str, Any]:
    lines = proc.stdout.strip().splitlines()
    assert lines, f"no stdout; stderr:\n{proc.stderr}"
    summary = json.loads(lines[-1])
    assert isinstance(summary, dict) and set(summary) >= SUMMARY_KEYS, summary
    return summary


def image_for(provider: str, asset_host: SimulatorServer, tmp_path: Path) -> str:
    """URL-only providers get an http URL (hosted by ``asset_host``); JieKou/Novita a local file."""
    if provider in URL_ONLY:
        return asset_host.put_asset("frame.png", png())
    path = tmp_path / "frame.png"
    path.write_bytes(png())
    return str(path)


def clip_args(provider: str, image: str, out: Path, *extra: str) -> list[str]:
    return [
        "--provider",
        provider,
        "--image",
        image,
        "--prompt",
        "a calm lake at dawn",
        "--duration",
        "4",
        "--resolution",
        "480p",
        "--seed",
        "7",
        "--out",
        str(out),
        "--json",
        *extra,
    ]


def assert_mp4(path: Path) -> None:
    data = path.read_bytes()
    assert looks_like_mp4(data[:12])
    probe = probe_video(data)
    assert (probe.width, probe.height) == (864, 496) and probe.duration_s == pytest.approx(4, abs=0.1)


def assert_success(proc: subprocess.CompletedProcess, provider: str, out: Path) -> dict[str, Any]:
    assert proc.returncode == 0, proc.stderr
    summary = last_json(proc)
    assert summary["provider"] == provider and summary["status"] == "succeeded" and summary["task_id"]
    assert summary["output"] == str(out) and out.is_file()
    assert summary["estimated_cost_usd"] == pytest.approx(ESTIMATED_USD[provider], rel=1e-3)
    if REPORTED_USD[provider] is None:
        assert summary["reported_cost_usd"] is None
    else:
        assert summary["reported_cost_usd"] == pytest.approx(REPORTED_USD[provider])
    assert_mp4(out)
    assert list(out.parent.glob("*.part-*")) == []
    return summary


def vibedream_config(**kw: Any) -> SimConfig:
    """The external simulator's VibeDream answers ``estimatedTime: "2-2s"`` at submit.

    Without --simulator the CLI uses the real-provider poll schedule (first poll near 60 s unless the
    provider gives a hint); VibeDream's hint makes it poll after 2 s, when the task (2 s, whole seconds
    so the hint's lower bound is exact) is done. The other four give no hint at submit.
    """
    return SimConfig(providers={"vibedream": ProviderSimConfig(latency_min_s=2.0, latency_max_s=2.0)}, **kw)


@pytest.fixture
def server():
    with SimulatorServer(vibedream_config(api_keys=[API_KEY])) as srv:
        yield srv


def provider_requests(srv: SimulatorServer) -> int:
    return sum(n for per in srv.sim.stats()["requests"].values() for n in per.values())


# --- success ------------------------------------------------------------------------------------


@pytest.mark.slow
def test_simulator_flag_generates_a_clip_with_each_provider(tmp_path, server):
    """``--simulator`` starts the built-in simulator (default 2 s latency); the six runs go concurrently.

    ``server`` only hosts the first frame for the URL-only providers (their built-in simulator fetches it).
    """
    runs = {}
    for provider in PROVIDERS:
        out = tmp_path / "clips" / f"{provider}.mp4"
        args = clip_args(provider, image_for(provider, server, tmp_path), out, "--simulator")
        runs[provider] = (
            out,
            subprocess.Popen(
                [*CLI, "generate", *args],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                cwd=tmp_path,
                env=clean_env(),
            ),
        )
    done = {}
    try:
        for provider, (_out, popen) in runs.items():
            stdout, stderr = popen.communicate(timeout=TIMEOUT_S)
            done[provider] = subprocess.CompletedProcess(popen.args, popen.returncode, stdout, stderr)
    finally:
        for _, popen in runs.values():
            if popen.poll() is None:
                popen.kill()
                popen.communicate()
    for provider, proc in done.items():
        summary = assert_success(proc, provider, runs[provider][0])
        assert summary["simulated"] is True, provider
    assert provider_requests(server) == 0  # the built-in simulators served them, not the image host


@pytest.mark.slow
def test_external_simulator_with_base_url_and_api_key_from_env(tmp_path, server):
    provider = "vibedream"
    out = tmp_path / "clip.mp4"
    env = clean_env(**{get_adapter(provider).env_key: API_KEY})  # VIBEDREAM_API_KEY
    args = clip_args(provider, image_for(provider, server, tmp_path), out, "--base-url", server.provider_url(provider))
    proc = run_generate(tmp_path, *args, env=env)
    summary = assert_success(proc, provider, out)
    assert summary["simulated"] is False
    # The server only accepts API_KEY: every request below carried the key from the environment.
    counts = server.sim.stats()["requests"][provider]
    assert counts["submit"] == 1 and counts["download"] == 1 and counts["status"] >= 1
    [task] = server.sim.tasks()
    assert summary["task_id"] == task["id"] and task["duration_s"] == 4 and task["resolution"] == "480p"


# --- rejected before sending: exit 2 ------------------------------------------------------------


@pytest.mark.parametrize("provider", ["runpod", "novita"])
def test_missing_api_key_exits_2_naming_the_env_var(tmp_path, server, provider):
    out = tmp_path / "clip.mp4"
    env_var = get_adapter(provider).env_key
    args = clip_args(provider, image_for(provider, server, tmp_path), out, "--base-url", server.provider_url(provider))
    proc = run_generate(tmp_path, *args)
    assert proc.returncode == 2, proc.stderr
    assert env_var in proc.stderr and env_var == f"{provider.upper()}_API_KEY"
    summary = last_json(proc)
    assert summary["status"] == "rejected" and summary["task_id"] is None and env_var in summary["error"]
    assert provider_requests(server) == 0 and not out.exists()


@pytest.mark.parametrize("provider", ["runpod", "novita"])
def test_invalid_duration_exits_2_naming_field_value_and_rule_with_zero_requests(tmp_path, server, provider):
    out = tmp_path / "clip.mp4"
    env = clean_env(**{get_adapter(provider).env_key: API_KEY})
    args = clip_args(provider, image_for(provider, server, tmp_path), out, "--base-url", server.provider_url(provider))
    args[args.index("--duration") + 1] = "13"
    proc = run_generate(tmp_path, *args, env=env)
    assert proc.returncode == 2, proc.stderr
    message = proc.stderr
    assert "duration=13" in message and "from 4 to 12" in message and provider in message
    summary = last_json(proc)
    assert summary["status"] == "rejected" and "duration=13" in summary["error"]
    assert provider_requests(server) == 0 and server.sim.tasks() == [] and not out.exists()


# --- failed after sending: exit 1 ---------------------------------------------------------------


@pytest.mark.slow
def test_moderation_after_sending_exits_1_with_the_providers_reason(tmp_path, server):
    provider = "vibedream"
    out = tmp_path / "clip.mp4"
    # This time the base URL comes from SEEDANCE_VIBEDREAM_BASE_URL instead of --base-url.
    env = clean_env(VIBEDREAM_API_KEY=API_KEY, **{settings.base_url(provider).name: server.provider_url(provider)})
    args = clip_args(provider, image_for(provider, server, tmp_path), out)
    args[args.index("--prompt") + 1] = "a calm lake at dawn [sim:moderation]"
    proc = run_generate(tmp_path, *args, env=env)
    assert proc.returncode == 1, proc.stderr
    assert sim_vibedream.MODERATION_ERROR in proc.stderr
    summary = last_json(proc)
    [task] = server.sim.tasks()
    assert summary["status"] == "failed" and summary["task_id"] == task["id"]
    assert sim_vibedream.MODERATION_ERROR in summary["error"]
    assert server.sim.stats()["requests"][provider]["submit"] == 1 and not out.exists()


@pytest.mark.parametrize("with_last", [False, True], ids=["first-frame", "first-and-last-frame"])
def test_modelark_generates_with_the_simulator_and_stores_the_last_frame(tmp_path, with_last):
    """``generate --provider modelark --simulator``: the MP4 at --out and Ark's last frame beside it
    (``<out>.last.png``, at the clip's size). First frame only: flex with a deadline, priced and charged at half;
    with --last-image both images go out with their roles."""
    out = tmp_path / "clips" / "lake.mp4"
    image = tmp_path / "frame.png"
    image.write_bytes(png())
    extra = ["--simulator"]
    if not with_last:  # flex with a deadline: accepted, and priced at half (the flex row of prices.yaml)
        extra += ["--service-tier", "flex", "--execution-expires-after", "7200"]
    if with_last:
        last = tmp_path / "last.png"
        last.write_bytes(png((810, 456)))
        extra += ["--last-image", str(last)]
    proc = run_generate(tmp_path, *clip_args("modelark", str(image), out, *extra))
    if with_last:
        summary = assert_success(proc, "modelark", out)
    else:
        assert proc.returncode == 0, proc.stderr
        summary = last_json(proc)
        assert summary["estimated_cost_usd"] == pytest.approx(ESTIMATED_USD["modelark"] / 2, abs=1e-6)
        assert summary["reported_cost_usd"] == pytest.approx(REPORTED_USD["modelark"] / 2)  # the flex token rate
        assert_mp4(out)
    stored_last = tmp_path / "clips" / "lake.last.png"
    assert summary["simulated"] is True and summary["last_frame"] == str(stored_last)
    with Image.open(stored_last) as frame:
        assert frame.format == "PNG" and frame.size == (864, 496)
    assert "last frame stored at" in proc.stderr and sorted(p.name for p in out.parent.iterdir()) == [
        "lake.last.png",
        "lake.mp4",
    ]


def heic(size=(800, 450), color=(30, 90, 160)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="HEIF")
    return buf.getvalue()


def test_a_heic_image_generates_with_modelark_and_is_refused_by_the_resellers_before_sending(tmp_path):
    """ModelArk takes HEIC/HEIF (docs/providers.md §2.5): the image goes out as a data:image/heif URI and the clip
    comes back. A reseller refuses the same file before anything is sent, naming the field, the file and the
    formats it takes."""
    image = tmp_path / "frame.heic"
    image.write_bytes(heic())
    out = tmp_path / "clips" / "lake.mp4"
    proc = run_generate(tmp_path, *clip_args("modelark", str(image), out, "--simulator"))
    assert proc.returncode == 0, proc.stderr
    assert last_json(proc)["status"] == "succeeded"
    assert_mp4(out)
    refused = run_generate(tmp_path, *clip_args("novita", str(image), tmp_path / "n.mp4", "--simulator"))
    assert refused.returncode == 2 and not (tmp_path / "n.mp4").exists()
    assert "image" in refused.stderr and "frame.heic" in refused.stderr and "HEIF is not accepted" in refused.stderr
