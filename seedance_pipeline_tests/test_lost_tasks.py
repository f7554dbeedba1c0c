"""A provider that forgets an accepted task: the attempt is lost, counted as charged, shown where people look, and
made again only by the next run, as a new attempt. Plus retention warnings and `tasks abandon` cancelling at the
provider. Real runs and the real CLI against the simulator on loopback."""

from __future__ import annotations

import asyncio
import time

import dagster as dg
import pandas as pd
import pytest
from click.testing import CliRunner

from seedance_pipeline.cli import main
from seedance_pipeline.cli.run_report import format_report
from seedance_pipeline.cli.runner import run_pipeline
from seedance_pipeline.clip.prepare import build_request, prepare
from seedance_pipeline.core import settings
from seedance_pipeline.core.errors import TaskLost
from seedance_pipeline.ledger import states
from seedance_pipeline.ledger.budget import SpendGuard
from seedance_pipeline.ledger.liveness import retention_warning
from seedance_pipeline.ledger.records import AttemptRecord
from seedance_pipeline.ledger.states import AttemptState
from seedance_pipeline.ledger.store import TaskStore
from seedance_pipeline.providers import get_adapter
from seedance_pipeline.providers.engine import ClientSettings, ProviderClient
from seedance_pipeline.providers.resource import SeedanceProviders
from seedance_pipeline.providers.routing import SIMULATOR_KEY
from seedance_pipeline.simulator.config import ProviderSimConfig, SimConfig
from seedance_pipeline.simulator.server import SimulatorServer
from seedance_pipeline_tests.conftest import png, put, requests_total
from seedance_pipeline_tests.test_sensors import _owned_by

PROMPT = 'text: "A calm lake at dawn"\nimages: ["lake"]\nprovider: {provider}\nduration: 4\nresolution: 480p\n'
CLIPS = dg.AssetKey("clips")


def _orphan(storage, provider: str, task_id: str) -> AttemptRecord:
    """An attempt a run accepted and died with: its owner on another host, its run unknown to the instance."""
    put(storage, "images/lake.png", png())
    put(storage, "prompts/dawn.yaml", PROMPT.format(provider=provider))
    prepared = prepare(
        get_adapter(provider),
        build_request(
            prompt="A calm lake at dawn", image=storage.path("images", "lake.png"), duration=4, resolution="480p"
        ),
    )
    store = TaskStore(storage)
    intent = store.create(prepared, image="lake", prompt="dawn", run_id="run-that-died", simulated=True)
    record = store.save(intent.moved(AttemptState.ACCEPTED, task_id=task_id))
    _owned_by(store, record, "another-host:4242:777")
    return store.load(record.attempt_id)


def test_a_forgotten_task_is_lost_charged_and_made_again_only_by_the_next_run(storage, providers, instance, sim):
    # The provider has no record of this task (its retention passed): a status GET answers 404.
    lost = _orphan(storage, "novita", "task-the-provider-forgot")
    store = TaskStore(storage)

    report = run_pipeline(instance, storage, providers)

    record = store.load(lost.attempt_id)
    assert record.state is AttemptState.LOST and store.open_records() == []
    assert any("lost" in line and "counted as charged" in line for line in report.failures), report.failures
    assert requests_total(sim, "submit") == 0  # never resubmitted in the run that found the loss
    assert report.clips == [] and not storage.exists(storage.clip_path("dawn", "lake"))
    # Shown on the clip partition, with the charge.
    [observation] = [
        e.asset_observation
        for e in instance.fetch_observations(dg.AssetRecordsFilter(asset_key=CLIPS), limit=10).records
    ]
    assert observation.partition == "lake|dawn" and observation.metadata["outcome"].value == "lost"
    assert observation.metadata["charged_usd"].value == pytest.approx(lost.estimated_cost_usd)
    # Counted as charged: in the cost report and in a budget's day.
    day = report.cost_report.rsplit("/", 2)[-2]
    df = pd.read_parquet(storage.path("reports", day, "cost_report.parquet"))
    row = df[df["attempt_id"] == lost.attempt_id].iloc[0]
    assert row["outcome"] == "lost" and row["charged_usd"] == pytest.approx(lost.estimated_cost_usd)
    assert SpendGuard(store, per_run_usd=None, per_day_usd=1.0).day_usd(record) == pytest.approx(
        lost.estimated_cost_usd
    )
    assert "attempt(s) were lost" in storage.read_bytes(storage.path("reports", day, "cost_report.md")).decode()
    # `tasks list` names it.
    listing = CliRunner().invoke(main, ["tasks", "list", "--storage", storage.url])
    assert listing.exit_code == 0 and lost.attempt_id in listing.output and "lost" in listing.output

    # The next run makes the clip again, as a new attempt, and says so.
    again = run_pipeline(instance, storage, providers)
    assert again.ok, again.failures
    assert [(r.clip, r.outcome) for r in again.clips] == [("lake|dawn", "generated")]
    assert requests_total(sim, "submit") == 1
    mat = instance.fetch_materializations(CLIPS, limit=1).records[0].asset_materialization
    assert mat.metadata["after_lost_attempt"].value == lost.attempt_id
    attempts = store.for_fingerprint(lost.fingerprint)
    assert [a.state for a in attempts] == [AttemptState.LOST, AttemptState.SUCCEEDED]
    assert "FAILED" not in format_report(again)


def test_a_runpod_record_past_its_retention_is_lost_not_a_free_failure():
    config = SimConfig(
        providers={"runpod": ProviderSimConfig(latency_min_s=0.05, latency_max_s=0.05, record_ttl_s=0.3)}
    )
    with SimulatorServer(config) as srv:

        async def go():
            prepared = prepare(get_adapter("runpod"), build_request(prompt="p", image=srv.put_asset("lake.png", png())))
            settings_ = ClientSettings(max_retries=1, backoff_base_s=0.01, expected_latency_s=0.05)
            async with ProviderClient(
                get_adapter("runpod"), SIMULATOR_KEY, base_url=srv.provider_url("runpod"), settings=settings_
            ) as client:
                snap = await client.submit(prepared.wire)
                # Until the record is gone: done at the simulator, then forgotten record_ttl_s after that.
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline:
                    gone = [t for t in srv.sim.tasks() if t["id"] == snap.task_id and t["finished_at"]]
                    if gone and time.time() > gone[0]["finished_at"] + 0.3:
                        break
                    await asyncio.sleep(0.05)
                with pytest.raises(TaskLost, match="no longer knows this task") as err:
                    await client.poll(snap.task_id)
                return err.value

        error = asyncio.run(go())
    assert error.task_id and error.status_code == 404


def test_an_open_task_nearing_its_providers_retention_is_warned_about():
    now = time.time()
    base = dict(fingerprint="f" * 64, image="lake", prompt="dawn", request={}, estimated_cost_usd=0.1, created_at=now)
    young = AttemptRecord(
        attempt_id="2026-12-01T000000Z-0000000001", provider="runpod", state="accepted", updated_at=now - 60, **base
    )
    old = young.model_copy(update={"updated_at": now - 20 * 60})
    undocumented = old.model_copy(update={"provider": "novita"})
    assert retention_warning(young, now) is None and retention_warning(undocumented, now) is None
    warning = retention_warning(old, now)
    assert warning is not None and "runpod forgets a task 30 min after it ends" in warning
    assert "seedance-pipeline run" in warning


@pytest.fixture
def runpod_queue():
    """RunPod on the simulator with every job queued for a while: a queued job can be cancelled."""
    config = SimConfig(providers={"runpod": ProviderSimConfig(queue_delay_s=30, latency_min_s=0.1, latency_max_s=0.1)})
    with SimulatorServer(config) as srv:
        yield srv


def test_abandon_cancels_a_queued_task_at_runpod_and_says_when_a_provider_cannot(storage, runpod_queue, monkeypatch):
    srv = runpod_queue
    for provider in ("runpod", "wavespeed"):
        monkeypatch.setenv(settings.base_url(provider).name, srv.provider_url(provider))
    monkeypatch.setenv("RUNPOD_API_KEY", SIMULATOR_KEY)
    put(storage, "images/lake.png", png())
    providers = SeedanceProviders.from_env()
    prepared = prepare(
        get_adapter("runpod"), build_request(prompt="p", image=srv.put_asset("lake.png", png()), resolution="480p")
    )

    async def submit():
        async with providers.make_client("runpod") as client:
            return await client.submit(prepared.wire)

    task = asyncio.run(submit())
    store = TaskStore(storage)
    record = store.save(
        store.create(prepared, image="lake", prompt="dawn", run_id=None, simulated=False).moved(
            AttemptState.ACCEPTED, task_id=task.task_id
        )
    )
    result = CliRunner().invoke(main, ["tasks", "abandon", record.attempt_id, "--storage", storage.url])
    assert result.exit_code == 0, result.output
    assert "cancelled" in result.output
    assert store.load(record.attempt_id).state is AttemptState.ABANDONED
    assert [t["phase"] for t in srv.sim.tasks()] == ["cancelled"]
    assert srv.sim.stats()["requests"]["runpod"]["cancel"] == 1

    # WaveSpeed documents no cancel: the attempt stays open, to be collected.
    ws = store.save(
        store.create(
            prepare(get_adapter("wavespeed"), build_request(prompt="p", image=srv.put_asset("l2.png", png()))),
            image="lake",
            prompt="ws",
            run_id=None,
            simulated=False,
        ).moved(AttemptState.ACCEPTED, task_id="ws-1")
    )
    result = CliRunner().invoke(main, ["tasks", "abandon", ws.attempt_id, "--storage", storage.url])
    assert result.exit_code == 1 and "wavespeed has no cancel endpoint" in result.output
    assert store.load(ws.attempt_id).state in states.OPEN
