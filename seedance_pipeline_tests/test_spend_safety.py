"""Never pay twice: reuse by fingerprint, acceptance-unknown submits are never resubmitted silently."""

from __future__ import annotations

import dagster as dg
import pytest
from click.testing import CliRunner

from seedance_pipeline.cli import main
from seedance_pipeline.cli.demo_data import write_demo_data
from seedance_pipeline.cli.runner import run_pipeline
from seedance_pipeline.ledger.store import TaskStore
from seedance_pipeline.simulator.config import FaultRule
from seedance_pipeline_tests.conftest import fast_config, png, put, requests_total

pytestmark = pytest.mark.slow


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

    # The UI shows it on the clip partition, once: an observation with the decision to make and its cost.
    from seedance_pipeline.definitions import build_definitions
    from seedance_pipeline.defs.sensors.pending_tasks import pending_tasks_sensor

    defs = build_definitions(storage, providers)
    with dg.build_sensor_context(instance=instance, resources=defs.resources, definitions=defs) as context:
        shown = pending_tasks_sensor(context)
    [notice] = shown.asset_events
    assert notice.partition == "lake|dawn" and notice.metadata["attempt_id"].value == record.attempt_id
    assert "acceptance unknown" in notice.metadata["needs_decision"].value and not shown.run_requests
    with dg.build_sensor_context(
        instance=instance, cursor=shown.cursor, resources=defs.resources, definitions=defs
    ) as context:
        assert pending_tasks_sensor(context).asset_events == []

    monkeypatch.setenv("SEEDANCE_STORAGE_URL", storage.url)
    listed = CliRunner().invoke(main, ["tasks", "list"])
    assert listed.exit_code == 0 and record.attempt_id in listed.output and "unknown" in listed.output
    abandoned = CliRunner().invoke(main, ["tasks", "abandon", record.attempt_id])
    assert abandoned.exit_code == 0 and "$" in abandoned.output, abandoned.output
    assert TaskStore(storage).open_records() == []

    third = run_pipeline(instance, storage, providers)  # the person decided: now it is made again
    assert third.ok and [r.clip for r in third.clips] == ["lake|dawn"]
    assert requests_total(sim, "submit") == 2


def test_a_task_id_from_the_dashboard_is_adopted_and_collected_without_a_second_submit(
    storage, providers, sim, instance, monkeypatch
):
    put(storage, "images/lake.png", png())
    put(storage, "prompts/dawn.yaml", "text: a calm lake\nprovider: novita\nduration: 4\nresolution: 480p\nseed: 3\n")
    sim.configure(fast_config(faults=[FaultRule(provider="novita", endpoint="submit", kind="drop_after", times=1)]))
    run_pipeline(instance, storage, providers)
    [record] = TaskStore(storage).open_records()
    [task] = sim.sim.tasks()  # what the provider's dashboard shows
    assert record.state == "unknown" and record.task_id is None
    monkeypatch.setenv("SEEDANCE_STORAGE_URL", storage.url)
    monkeypatch.setenv("SEEDANCE_SIMULATOR_URL", sim.base_url)

    wrong = CliRunner().invoke(main, ["tasks", "adopt", record.attempt_id, "no-such-task"])
    assert wrong.exit_code == 1 and "novita did not confirm task no-such-task" in wrong.output, wrong.output
    assert TaskStore(storage).load(record.attempt_id) == record  # unchanged

    adopted = CliRunner().invoke(main, ["tasks", "adopt", record.attempt_id, task["id"]])
    assert adopted.exit_code == 0 and task["id"] in adopted.output, adopted.output
    again = CliRunner().invoke(main, ["tasks", "adopt", record.attempt_id, task["id"]])
    assert again.exit_code == 1 and "accepted" in again.output  # only an undecided attempt takes a task id

    collected = run_pipeline(instance, storage, providers)
    assert collected.ok, collected.failures
    assert [r.clip for r in collected.clips] == ["lake|dawn"]
    assert requests_total(sim, "submit") == 1  # the clip the provider made, collected: not paid again
    assert TaskStore(storage).load(record.attempt_id).state == "succeeded"


THREE_NOVITA = "text: a calm lake\nprovider: novita\nduration: 5\nresolution: 720p\naspect_ratio: '16:9'\nseed: 3\n"


def _three_images(storage):
    for name, color in (("a", (200, 40, 40)), ("b", (40, 200, 40)), ("c", (40, 40, 200))):
        put(storage, f"images/{name}.png", png(color=color))


def test_per_run_budget_blocks_the_clip_that_would_pass_it_and_the_rest_continue(storage, providers, sim, instance):
    from seedance_pipeline.ledger.budget import SpendPolicy

    _three_images(storage)
    put(storage, "prompts/lake.yaml", THREE_NOVITA)
    each = 1280 * 720 * (24 * 5 + 1) / 1024 * 1.2 / 1e6  # Novita, 720p 16:9, 5 s, silent (assumed ByteDance rate)
    report = run_pipeline(instance, storage, providers, spend=SpendPolicy(per_run_usd=2.5 * each))
    assert len(report.clips) == 2 and len(report.failures) == 1, report.failures
    assert "over the per-run budget" in report.failures[0] and "nothing was sent" in report.failures[0]
    assert requests_total(sim, "submit") == 2  # zero requests for the blocked clip
    states = sorted(r.state for r in TaskStore(storage).day_records(report.cost_report.rsplit("/", 2)[-2]))
    assert states == ["blocked", "succeeded", "succeeded"]
    assert TaskStore(storage).open_records() == []
    summary = storage.read_bytes(report.cost_report).decode() if not report.cost_report.startswith("s3") else ""
    assert "1 attempt(s) were stopped by a budget" in summary and "| lake " in summary


def test_daily_budget_counts_earlier_runs_and_blocks_before_sending(storage, providers, sim, instance):
    from seedance_pipeline.ledger.budget import SpendPolicy

    _three_images(storage)
    put(storage, "prompts/lake.yaml", THREE_NOVITA.replace("images: ", "") + "images: [a, b]\n")
    each = 1280 * 720 * (24 * 5 + 1) / 1024 * 1.2 / 1e6
    daily = SpendPolicy(per_day_usd=2.5 * each)
    first = run_pipeline(instance, storage, providers, spend=daily)
    assert first.ok and len(first.clips) == 2
    put(storage, "prompts/lake.yaml", THREE_NOVITA)  # now targets c too (a, b unchanged: reused for free)
    second = run_pipeline(instance, storage, providers, spend=daily)
    assert [r.clip for r in second.clips] == [] and len(second.failures) == 1, second.failures
    assert "c|lake" in second.failures[0] and "over the daily budget" in second.failures[0]
    assert requests_total(sim, "submit") == 2
    # A budget of its own kind: simulated attempts never count against real ones (and vice versa).
    from seedance_pipeline.ledger.budget import SpendGuard

    [record] = [r for r in TaskStore(storage).day_records(first.cost_report.rsplit("/", 2)[-2]) if r.state == "blocked"]
    guard = SpendGuard(TaskStore(storage), per_run_usd=None, per_day_usd=daily.per_day_usd)
    assert guard.day_usd(record.model_copy(update={"simulated": False})) == 0.0


def test_auto_fails_over_only_before_acceptance(storage, providers, sim, instance):
    put(storage, "images/a.png", png())
    put(
        storage,
        "prompts/cheap.yaml",
        "text: waves\nprovider: auto\nduration: 4\nresolution: 480p\naspect_ratio: '16:9'\n",
    )
    # WaveSpeed is the cheapest here and keeps answering 429: it never takes the task -> next cheapest: ModelArk, at
    # the ByteDance rate JieKou and Novita are assumed to charge too (a published price comes first at one price).
    sim.configure(
        fast_config(faults=[FaultRule(provider="wavespeed", endpoint="submit", kind="http_429", retry_after="0")])
    )
    report = run_pipeline(instance, storage, providers)
    assert report.ok, report.failures
    assert [(r.clip, r.provider) for r in report.clips] == [("a|cheap", "modelark")]
    meta = instance.fetch_materializations(dg.AssetKey("clips"), limit=1).records[0].asset_materialization.metadata
    assert "wavespeed" in meta["passed_over"].value
    stats = sim.sim.stats()["requests"]
    assert stats["wavespeed"]["submit"] == 7 and stats["modelark"]["submit"] == 1  # 1 + 6 retries, then one submit
    day = report.cost_report.rsplit("/", 2)[-2]
    assert sorted((r.provider, r.state) for r in TaskStore(storage).day_records(day)) == [
        ("modelark", "succeeded"),
        ("wavespeed", "rejected"),
    ]

    # Accepted, then failed at the provider: never re-bought elsewhere.
    put(
        storage,
        "prompts/cheap.yaml",
        "text: waves crash\nprovider: auto\nduration: 4\nresolution: 480p\naspect_ratio: '16:9'\n",
    )
    sim.configure(fast_config(faults=[FaultRule(provider="wavespeed", endpoint="submit", kind="fail")]))
    failed = run_pipeline(instance, storage, providers)
    assert failed.clips == [] and len(failed.failures) == 1 and "failed" in failed.failures[0]
    stats = sim.sim.stats()["requests"]
    assert stats["wavespeed"]["submit"] == 8 and stats["modelark"]["submit"] == 1 and stats["jiekou"]["submit"] == 0


def test_a_renamed_prompt_reuses_the_stored_clips_and_a_reverted_edit_reuses_the_kept_version(
    storage, providers, sim, instance
):
    write_demo_data(storage)
    run_pipeline(instance, storage, providers)
    assert requests_total(sim, "submit") == 5
    quick = storage.read_bytes(storage.path("prompts", "quick-pan.yaml")).decode()
    put(storage, "prompts/quick-pan-copy.yaml", quick)  # same request, another name
    copied = run_pipeline(instance, storage, providers)
    assert {(r.clip, r.outcome) for r in copied.clips} == {
        ("mountains|quick-pan-copy", "reused"),
        ("tower|quick-pan-copy", "reused"),
    }
    assert requests_total(sim, "submit") == 5
    assert storage.exists(storage.clip_path("quick-pan-copy", "tower"))
    import pandas as pd

    df = pd.read_parquet(storage.path("reports", copied.cost_report.rsplit("/", 2)[-2], "cost_report.parquet"))
    assert round(df.loc[df["prompt"] == "quick-pan-copy", "saved_usd"].sum(), 4) == round(2 * 4 * 0.024, 4)

    put(storage, "prompts/quick-pan.yaml", quick.replace("Gentle pan", "Brisk pan"))
    edited = run_pipeline(instance, storage, providers)
    assert {r.outcome for r in edited.clips} == {"generated"} and requests_total(sim, "submit") == 7
    put(storage, "prompts/quick-pan.yaml", quick)  # changed our mind: the first clips come back for free
    reverted = run_pipeline(instance, storage, providers)
    assert {(r.clip, r.outcome) for r in reverted.clips} == {
        ("mountains|quick-pan", "reused"),
        ("tower|quick-pan", "reused"),
    }
    assert requests_total(sim, "submit") == 7
