"""Retakes (issue 17 §5): a rejected take is made again on the next run with a new seed, once, budget-checked and
forecast like any clip; --no-retake and SEEDANCE_MAX_TAKES stop it; the rejected take is kept as a version."""

from __future__ import annotations

import json

import dagster as dg
import pytest

from seedance_pipeline.cli.runner import run_pipeline
from seedance_pipeline.definitions import build_definitions
from seedance_pipeline.defs.sensors.reviews import review_sensor
from seedance_pipeline.planning import backfill
from seedance_pipeline.planning.retakes import Retake, seed_max
from seedance_pipeline.storage import layout
from seedance_pipeline_tests.conftest import requests_total
from seedance_pipeline_tests.review_support import cli, listed
from seedance_pipeline_tests.test_sensors import execute, tick


def submits(sim) -> list[dict]:
    return [s for s in sim.sim.submits() if s["accepted"]]


def sidecar(storage, prompt: str, image: str) -> dict:
    return json.loads(storage.read_bytes(storage.sidecar_path(prompt, image)))


def test_a_rejected_take_is_made_again_once_with_a_new_seed(made, sim, providers, instance):
    first = sidecar(made, "dusk-dolly", "tower")
    cli(made, "review", "reject", "tower|dusk-dolly", "--note", "the tower melts")
    before = len(submits(sim))

    report = run_pipeline(instance, made, providers)

    assert report.ok, report.failures
    sent = submits(sim)[before:]
    assert len(sent) == 1, sent  # exactly one new request, and only for the rejected pair
    second = sidecar(made, "dusk-dolly", "tower")
    assert second["retake_of"] == first["fingerprint"] and second["fingerprint"] != first["fingerprint"]
    expected_seed = Retake(first["fingerprint"], 2, first["request"]["seed"]).seed(seed_max("novita"))
    assert second["request"]["seed"] == expected_seed != first["request"]["seed"] == 42
    assert json.dumps(expected_seed) in json.dumps(sent[0]["body"])  # the seed went over the wire
    row = listed(made)["tower|dusk-dolly"]
    assert (row["take"], row["state"], row["fingerprint"]) == (2, "pending", second["fingerprint"])
    # the rejected take is kept as a version, never deleted
    assert made.exists(made.path(layout.kept_version("dusk-dolly", "tower", first["fingerprint"])))

    polls = requests_total(sim)
    again = run_pipeline(instance, made, providers)
    assert again.ok and len(submits(sim)) == before + 1 and requests_total(sim) == polls  # nothing more


def test_no_retake_and_the_take_cap_leave_the_pair_waiting(made, sim, providers, instance, monkeypatch):
    cli(made, "review", "reject", "tiles|dusk-dolly", "--note", "too busy", "--no-retake")
    monkeypatch.setenv("SEEDANCE_MAX_TAKES", "1")
    cli(made, "review", "reject", "tower|quick-pan", "--note", "wobbles")
    before = len(submits(sim))

    report = run_pipeline(instance, made, providers)

    assert report.ok, report.failures
    assert len(submits(sim)) == before
    plan = backfill.plan(instance, made, providers, mode="missing_or_stale")
    assert plan.clips == [] and plan.waiting == [
        "tower|quick-pan: take 1 of at most 1 without a person (SEEDANCE_MAX_TAKES): approve an earlier take, "
        "reject with --no-retake, edit the prompt, or raise the setting"
    ]
    row = listed(made)["tower|quick-pan"]
    assert row["next"].startswith("waits: take 1 of at most 1")
    assert listed(made)["tiles|dusk-dolly"]["next"] == "none: rejected with --no-retake"


def test_the_forecast_counts_retakes_separately_and_prices_them(made, providers, instance):
    cli(made, "review", "reject", "mountains|quick-pan", "--note", "the ridge wobbles")
    plan = backfill.plan(instance, made, providers, mode="missing_or_stale")
    [clip] = plan.clips
    assert (clip.partition, clip.retake, clip.reused) == ("mountains|quick-pan", 2, False)
    assert clip.usd > 0 and plan.retakes == [clip]
    text = backfill.format_plan(plan)
    assert "retake: take 2, a new seed" in text
    assert f"of which retakes of rejected takes: 1 clip(s), {clip.usd:.4f} USD" in text


@pytest.mark.parametrize("mode", ["missing", "stale", "all"])
def test_every_mode_makes_the_retake(made, providers, instance, mode):
    cli(made, "review", "reject", "mountains|quick-pan", "--note", "the ridge wobbles")
    plan = backfill.plan(instance, made, providers, mode=mode, prompts=["quick-pan"])
    retakes = {c.partition for c in plan.retakes}
    assert retakes == {"mountains|quick-pan"}
    # an explicit materialization of everything reuses the others for free
    assert all(c.reused for c in plan.clips if c.retake is None)


def test_a_rejected_take_of_an_edited_prompt_is_a_new_take_not_a_retake(made, providers, instance):
    cli(made, "review", "reject", "mountains|quick-pan", "--note", "the ridge wobbles")
    path = made.path("prompts", "quick-pan.yaml")
    made.write_bytes(path, made.read_bytes(path).replace(b"Gentle pan", b"Brisk pan"))
    report = run_pipeline(instance, made, providers)
    assert report.ok, report.failures
    after = sidecar(made, "quick-pan", "mountains")
    assert after["retake_of"] is None and after["request"]["seed"] == 7  # the prompt's own seed


def test_the_review_sensor_launches_the_retake_a_rejection_calls_for(made, sim, providers, instance):
    defs = build_definitions(made, providers)
    first, _ = tick(review_sensor, instance, made, defs)
    assert first.run_requests == []  # nothing reviewed yet
    cli(made, "review", "reject", "tower|dusk-dolly", "--note", "the tower melts")
    result, _ = tick(review_sensor, instance, made, defs, cursor=first.cursor)
    [request] = result.run_requests
    assert request.job_name == "clips_job" and request.tags["seedance/trigger"] == "review_sensor"
    before = len(submits(sim))
    assert execute(defs, instance, request).success
    assert len(submits(sim)) == before + 1
    assert sidecar(made, "dusk-dolly", "tower")["retake_of"] is not None
    again, _ = tick(review_sensor, instance, made, defs, cursor=result.cursor)
    assert isinstance(again, dg.SkipReason)  # the same review files: nothing to do
