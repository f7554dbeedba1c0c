"""kill -9 of a process running a clips materialization, at four points, then resume: every clip ends stored
exactly once, and the provider saw exactly one submit per request fingerprint.

The process is the real ``seedance-pipeline run`` (Dagster, SQLite instance, local storage) against the
simulator in this test process, so the provider side survives the kill. Each kill point is reached by
watching what the process has done (task records in storage, the simulator's counters), never by timing:
1. right after submit: the first task record turns ``accepted``;
2. mid-poll, with the other clips still before their submit (in-flight cap 1, so they wait for the slot):
   a resumed task is being polled;
3. mid-download: the output is trickling in and a partial file exists;
then a last run completes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from seedance_pipeline.clip.checks import RULES
from seedance_pipeline.clip.probe import probe_video
from seedance_pipeline.event_logs.instance_config import ensure_instance_config
from seedance_pipeline.ledger.store import TaskStore
from seedance_pipeline.simulator.config import FaultRule
from seedance_pipeline.storage.resource import SeedanceStorage
from seedance_pipeline_tests.conftest import fast_config, png, put

IMAGES = ("a", "b", "c")
PROMPT = (
    "text: a slow pan over the hills\nprovider: novita\nduration: 4\nresolution: 480p\naspect_ratio: '16:9'\nseed: 5\n"
)

pytestmark = pytest.mark.slow


@pytest.fixture
def world(tmp_path, sim):
    home = tmp_path / "home"
    ensure_instance_config(home)  # the embedded default, as `make ui` / `seedance-pipeline run` write it
    storage = SeedanceStorage(url=str(tmp_path / "storage"))
    for n, name in enumerate(IMAGES):
        put(storage, f"images/{name}.png", png(color=(60 * n, 90, 200 - 50 * n)))
    put(storage, "prompts/hills.yaml", PROMPT)
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY") and not k.startswith("SEEDANCE_")}
    env.update(
        DAGSTER_HOME=str(home),
        SEEDANCE_STORAGE_URL=storage.url,
        SEEDANCE_SIMULATOR_URL=sim.base_url,
        SEEDANCE_MAX_IN_FLIGHT_NOVITA="1",
    )
    # The first task takes 12 s, so it is still running when the second run resumes it; later ones take 1 s.
    sim.configure(fast_config().model_copy(update={"providers": {"novita": _timing(12.0)}}))
    return storage, env, tmp_path


def _timing(latency_s: float):
    from seedance_pipeline.simulator.config import ProviderSimConfig

    return ProviderSimConfig(latency_min_s=latency_s, latency_max_s=latency_s)


def _start(env, log: Path) -> subprocess.Popen:
    cli = str(Path(sys.executable).with_name("seedance-pipeline"))
    return subprocess.Popen(
        [cli, "run"], env=env, stdout=open(log, "wb"), stderr=subprocess.STDOUT, start_new_session=True
    )


def _kill_when(proc: subprocess.Popen, condition, what: str, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return
        if proc.poll() is not None:
            raise AssertionError(f"the run ended (exit {proc.returncode}) before {what}")
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)
    raise AssertionError(f"timed out waiting for {what}")


def _records(storage) -> list:
    try:
        paths = storage.fs.find(storage.path("tasks", "days"))
    except FileNotFoundError:
        return []
    return [json.loads(storage.read_bytes(p)) for p in paths if p.endswith(".json")]


def _counts(sim) -> dict:
    return sim.sim.stats()["requests"]["novita"]


def test_kill_9_at_four_points_then_resume_stores_every_clip_once_with_one_submit_each(world, sim):
    storage, env, tmp = world

    # 1. right after submit
    proc = _start(env, tmp / "run1.log")
    _kill_when(proc, lambda: any(r["state"] == "accepted" for r in _records(storage)), "a task to be accepted")
    assert _counts(sim)["submit"] == 1
    sim.configure(sim.sim.config.model_copy(update={"providers": {"novita": _timing(1.0)}}))

    # 2. mid-poll (the accepted task is resumed and polled), the other two still before their submit
    proc = _start(env, tmp / "run2.log")
    polled = _counts(sim)["status"]
    _kill_when(proc, lambda: _counts(sim)["status"] > polled, "the resumed task to be polled")
    assert _counts(sim)["submit"] == 1
    assert [r["state"] for r in _records(storage)] == ["accepted"]

    # 3. mid-download: the first task's output trickles in over 20 s; kill once part of it is on disk. The slot
    #    is free during a download, so the next clip may be submitted meanwhile: kill when no attempt is
    #    between its intent and the provider's answer (that instant is "acceptance unknown" by design).
    sim.configure(
        sim.sim.config.model_copy(
            update={
                "faults": [FaultRule(provider="novita", endpoint="download", kind="trickle", delay_s=20.0, times=1)]
            }
        )
    )
    proc = _start(env, tmp / "run3.log")
    clips_dir = Path(storage.path("clips"))
    _kill_when(
        proc,
        lambda: (
            _counts(sim)["download"] >= 1
            and any(clips_dir.rglob("*.part-*"))
            and all(r["state"] == "accepted" for r in _records(storage))
        ),
        "a partial download",
    )
    assert not any(clips_dir.rglob("*.mp4"))
    assert {r["state"] for r in _records(storage)} == {"accepted"} and _counts(sim)["submit"] == len(_records(storage))

    # 4. resume to the end
    sim.configure(sim.sim.config.model_copy(update={"faults": []}))
    proc = _start(env, tmp / "run4.log")
    assert proc.wait(timeout=180) == 0, (tmp / "run4.log").read_text()[-3000:]

    # every clip stored exactly once, complete, checked
    stored = sorted(p.name for p in clips_dir.rglob("*.mp4"))
    assert stored == [f"{i}.mp4" for i in IMAGES]
    for image in IMAGES:
        assert probe_video(storage.clip_path("hills", image)).decoded_to_end
        checks = json.loads(storage.read_bytes(storage.sidecar_path("hills", image)))["checks"]
        assert checks == dict.fromkeys(RULES, True)
    assert not any(clips_dir.rglob("*.part-*"))
    # one submit per request fingerprint, and each attempt ended once, succeeded
    submits = Counter(s["key"] for s in sim.sim.submits())
    assert len(submits) == len(IMAGES) and set(submits.values()) == {1}
    records = _records(storage)
    assert Counter(r["fingerprint"] for r in records if r["state"] == "succeeded") == Counter(
        {r["fingerprint"]: 1 for r in records}
    )
    assert len(records) == len(IMAGES) and TaskStore(storage).open_records() == []
