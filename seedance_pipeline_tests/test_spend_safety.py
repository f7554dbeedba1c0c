"""Never pay twice: reuse by fingerprint, acceptance-unknown submits are never resubmitted silently."""

from __future__ import annotations

import dagster as dg
from click.testing import CliRunner

from seedance_pipeline.cli import main
from seedance_pipeline.demo import write_demo_data
from seedance_pipeline.runner import run_pipeline
from seedance_pipeline.simulator.config import FaultRule
from seedance_pipeline.tasks import TaskStore

from .conftest import fast_config, png, put, requests_total


def test_clips_in_storage_are_reused_with_zero_requests(storage, providers, sim):
    write_demo_data(storage)
    with dg.instance_for_test() as first:
        made = run_pipeline(first, storage, providers)
    assert made.ok and len(made.clips) == 5
    before = requests_total(sim)
    # A fresh Dagster instance (history lost, or another deployment) over the same storage.
    with dg.instance_for_test() as second:
        again = run_pipeline(second, storage, providers)
        assert again.ok, again.failures
        assert {r.clip for r in again.clips} == {r.clip for r in made.clips}
        assert {r.outcome for r in again.clips} == {"reused"}
        assert all(r.cost_usd == 0 for r in again.clips)
        meta = second.fetch_materializations(dg.AssetKey("clips"), limit=1).records[0].asset_materialization.metadata
        assert meta["outcome"].value == "reused"
    assert requests_total(sim) == before  # not one request to any provider


def test_acceptance_unknown_is_never_resubmitted_until_a_person_decides(storage, providers, sim, instance, monkeypatch):
    put(storage, "images/lake.png", png())
    put(storage, "prompts/dawn.yaml", "text: a calm lake\nprovider: novita\nduration: 4\nresolution: 480p\nseed: 3\n")
    # The provider takes the POST, creates the task, and the connection drops before the answer.
    sim.configure(fast_config(faults=[FaultRule(provider="novita", endpoint="submit", kind="drop_after", times=1)]))

    first = run_pipeline(instance, storage, providers)
    assert first.clips == [] and len(first.failures) == 1
    assert "acceptance" in first.failures[0].lower() or "may exist" in first.failures[0]
    assert requests_total(sim, "submit") == 1
    [record] = TaskStore(storage).open_records()
    assert record.state == "unknown"

    second = run_pipeline(instance, storage, providers)  # a later run refuses to pay again
    assert requests_total(sim, "submit") == 1
    assert any(record.attempt_id in f and "seedance-pipeline tasks" in f for f in second.failures), second.failures

    monkeypatch.setenv("SEEDANCE_STORAGE_URL", storage.url)
    listed = CliRunner().invoke(main, ["tasks", "list"])
    assert listed.exit_code == 0 and record.attempt_id in listed.output and "unknown" in listed.output
    abandoned = CliRunner().invoke(main, ["tasks", "abandon", record.attempt_id])
    assert abandoned.exit_code == 0 and "$" in abandoned.output, abandoned.output
    assert TaskStore(storage).open_records() == []

    third = run_pipeline(instance, storage, providers)  # the person decided: now it is made again
    assert third.ok and [r.clip for r in third.clips] == ["lake|dawn"]
    assert requests_total(sim, "submit") == 2
