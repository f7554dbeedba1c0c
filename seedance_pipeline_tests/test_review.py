"""Reviews as data (issue 17 §3): ``seedance-pipeline review list|approve|reject`` on clips the simulator made,
the decisions as plain files in storage, and review files edited by hand that break a rule."""

from __future__ import annotations

import json
from datetime import datetime

import pytest

from seedance_pipeline.cli.runner import run_pipeline
from seedance_pipeline.storage import layout
from seedance_pipeline_tests.conftest import put
from seedance_pipeline_tests.review_support import DEMO_CLIPS, cli, listed


def test_every_new_take_starts_pending(made):
    rows = listed(made)
    assert set(rows) == DEMO_CLIPS
    for clip, row in rows.items():
        image, prompt = clip.split("|")
        sidecar = json.loads(made.read_bytes(made.sidecar_path(prompt, image)))
        assert (row["state"], row["take"], row["checks_passed"]) == ("pending", 1, True)
        assert (row["fingerprint"], row["provider"], row["seed"]) == (
            sidecar["fingerprint"],
            sidecar["provider"],
            sidecar["seed"],
        )
    assert set(listed(made, "--prompt", "quick-pan")) == {"mountains|quick-pan", "tower|quick-pan"}
    assert listed(made, "--state", "approved") == {}


def test_decisions_are_stored_with_the_take_they_apply_to(made):
    out = cli(made, "review", "approve", "tower|dusk-dolly", "--note", "lovely light").stdout
    assert "approved take 1 of tower|dusk-dolly" in out and "ana" in out
    out = cli(made, "review", "reject", "quick-pan/mountains", "--note", "the ridge wobbles").stdout
    assert "rejected take 1 of mountains|quick-pan" in out
    cli(made, "review", "reject", "tiles|dusk-dolly", "--note", "too busy", "--no-retake")

    rows = listed(made)
    assert {c: r["state"] for c, r in rows.items()} == {
        "tower|dusk-dolly": "approved",
        "mountains|quick-pan": "rejected",
        "tiles|dusk-dolly": "rejected",
        "mountains|dusk-dolly": "pending",
        "tower|quick-pan": "pending",
    }
    assert set(listed(made, "--state", "pending")) == {"mountains|dusk-dolly", "tower|quick-pan"}
    stored = json.loads(made.read_bytes(made.path(layout.review("quick-pan", "mountains"))))
    sidecar = json.loads(made.read_bytes(made.sidecar_path("quick-pan", "mountains")))
    [decision] = stored["decisions"]
    assert (stored["image"], stored["prompt"]) == ("mountains", "quick-pan")
    assert decision["fingerprint"] == sidecar["fingerprint"] and decision["take"] == 1
    assert (decision["state"], decision["reviewer"], decision["note"], decision["retake"]) == (
        "rejected",
        "ana",
        "the ridge wobbles",
        True,
    )
    assert datetime.fromisoformat(decision["at"]).tzinfo is not None
    no_retake = json.loads(made.read_bytes(made.path(layout.review("dusk-dolly", "tiles"))))["decisions"][0]
    assert no_retake["retake"] is False
    # A later decision on the same take replaces the state; the history stays in the file.
    cli(made, "review", "approve", "mountains|quick-pan")
    assert listed(made)["mountains|quick-pan"]["state"] == "approved"
    assert len(json.loads(made.read_bytes(made.path(layout.review("quick-pan", "mountains"))))["decisions"]) == 2


def test_a_new_take_of_a_reviewed_pair_starts_pending(made, providers, instance):
    cli(made, "review", "approve", "tower|quick-pan")
    path = made.path("prompts", "quick-pan.yaml")
    put(made, "prompts/quick-pan.yaml", made.read_bytes(path).decode().replace("Gentle pan", "Brisk pan"))
    report = run_pipeline(instance, made, providers)
    assert report.ok, report.failures
    row = listed(made)["tower|quick-pan"]
    assert (row["take"], row["state"]) == (2, "pending")
    old = json.loads(made.read_bytes(made.path(layout.review("quick-pan", "tower"))))["decisions"][0]
    assert old["take"] == 1 and old["fingerprint"] != row["fingerprint"]  # the approval stays with take 1


@pytest.mark.parametrize(
    ("edit", "field", "rule"),
    [
        (lambda d: d["decisions"][0].update(state="maybe"), "decisions[0].state", "'approved' or 'rejected'"),
        (lambda d: d["decisions"][0].update(note=" ", state="rejected"), "decisions[0]", "needs a note"),
        (lambda d: d["decisions"][0].update(take=0), "decisions[0].take", "greater than or equal to 1"),
        (lambda d: d["decisions"][0].update(fingerprint="abc"), "decisions[0].fingerprint", "should match"),
        (lambda d: d["decisions"][0].update(at="yesterday"), "decisions[0].at", "datetime"),
        (lambda d: d["decisions"][0].update(colour="red"), "decisions[0].colour", "Extra inputs"),
        (lambda d: d.update(image="tiles"), "image", "must be 'tower', the pair this file is for"),
    ],
    ids=["state", "note", "take", "fingerprint", "time", "extra", "pair"],
)
def test_a_bad_review_file_is_named_with_its_field_and_rule_and_left_as_it_is(made, edit, field, rule):
    cli(made, "review", "approve", "tower|dusk-dolly")
    path = made.path(layout.review("dusk-dolly", "tower"))
    doc = json.loads(made.read_bytes(path))
    edit(doc)
    bad = json.dumps(doc).encode()
    made.write_bytes(path, bad)

    result = cli(made, "review", "list", ok=False)
    assert result.exit_code == 2
    assert f"{path}: {field}=" in result.stderr and rule in result.stderr, result.stderr
    assert "mountains|dusk-dolly" in result.stdout  # the other pairs are still listed
    result = cli(made, "review", "reject", "tower|dusk-dolly", "--note", "no", ok=False)
    assert result.exit_code == 2 and field in result.stderr
    assert made.read_bytes(path) == bad  # untouched by both


def test_a_review_file_that_is_not_json_is_refused(made):
    path = made.path(layout.review("dusk-dolly", "tower"))
    made.write_bytes(path, b"state: approved\n")
    result = cli(made, "review", "approve", "tower|dusk-dolly", ok=False)
    assert result.exit_code == 2 and "must be JSON" in result.stderr
    assert made.read_bytes(path) == b"state: approved\n"


@pytest.mark.parametrize(
    ("clip", "says"),
    [
        ("tower", "name the clip as <image>|<prompt> or <prompt>/<image>"),
        ("tiles|quick-pan", "no stored clip clips/quick-pan/tiles.mp4"),
        ("../x|dusk-dolly", "is not a key"),
    ],
)
def test_a_clip_that_cannot_be_reviewed_is_refused_and_nothing_is_written(made, clip, says):
    result = cli(made, "review", "approve", clip, ok=False)
    assert result.exit_code == 2 and says in result.stderr, result.stderr
    assert not made.fs.exists(made.path("reviews", "quick-pan", "tiles.json"))


def test_a_rejection_needs_a_note(made):
    result = cli(made, "review", "reject", "tower|dusk-dolly", ok=False)
    assert result.exit_code == 2 and "--note" in result.output
