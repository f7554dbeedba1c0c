"""The review loop end to end (issue 17, "Done when"): the demo's clips, a gallery, one take rejected and the others
approved, a run that makes exactly one new take with a new seed, its approval, and every approved take in
``selects/`` with a manifest, as Dagster materializations downstream of the clips."""

from __future__ import annotations

import csv
import io
import json

import dagster as dg
import pytest

from seedance_pipeline.cli.runner import run_pipeline
from seedance_pipeline.definitions import defs
from seedance_pipeline.lineage.names import CLIPS_KEY, COST_REPORT_KEY, GALLERIES_KEY, SELECTS_KEY
from seedance_pipeline.review.gallery import build_gallery
from seedance_pipeline.storage import layout
from seedance_pipeline_tests.review_support import DEMO_CLIPS, cli, listed

REJECTED_CLIP = "tower|dusk-dolly"


def manifest(storage, prompt: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(storage.read_bytes(storage.path(layout.manifest(prompt))).decode())))


def selects_materializations(instance) -> dict[str, dg.AssetMaterialization]:
    records = instance.fetch_materializations(SELECTS_KEY, limit=100).records
    latest: dict[str, dg.AssetMaterialization] = {}
    for record in reversed(records):  # oldest first, so the newest wins
        mat = record.asset_materialization
        assert mat is not None and mat.partition is not None
        latest[mat.partition] = mat
    return latest


def gallery_builds(instance, prompt: str) -> int:
    records = instance.fetch_materializations(GALLERIES_KEY, limit=100).records
    return sum(r.asset_materialization is not None and r.asset_materialization.partition == prompt for r in records)


def test_reject_one_approve_the_rest_run_approve_and_find_every_select(made, sim, providers, instance):
    # `run` built the galleries of the prompts it made takes for (local storage), and each decision builds its
    # prompt's again
    assert gallery_builds(instance, "dusk-dolly") == 1 and gallery_builds(instance, "quick-pan") == 1
    assert made.exists(made.path(layout.gallery("dusk-dolly"))) and made.exists(made.path(layout.gallery("quick-pan")))
    page = build_gallery(made, "dusk-dolly")
    assert page.takes == 3
    first = json.loads(made.read_bytes(made.sidecar_path("dusk-dolly", "tower")))
    submitted = len(sim.sim.submits())

    cli(made, "review", "reject", REJECTED_CLIP, "--note", "the tower melts")
    for clip in sorted(DEMO_CLIPS - {REJECTED_CLIP}):
        out = cli(made, "review", "approve", clip).stdout
        image, prompt = clip.split("|")
        assert f"selects: take 1 of {clip} at {made.ref(made.path(layout.select_clip(prompt, image)))}" in out
    assert len(sim.sim.submits()) == submitted  # approving pays for nothing
    assert {r["image"] for r in manifest(made, "dusk-dolly")} == {"mountains", "tiles"}
    assert gallery_builds(instance, "dusk-dolly") == 1 + 3  # rebuilt by each decision on its clips
    assert "the tower melts" in made.read_bytes(made.path(layout.gallery("dusk-dolly"))).decode()

    report = run_pipeline(instance, made, providers)
    assert report.ok, report.failures
    [retake] = sim.sim.submits()[submitted:]  # exactly one new take, nothing else requested
    second = json.loads(made.read_bytes(made.sidecar_path("dusk-dolly", "tower")))
    assert second["retake_of"] == first["fingerprint"] and second["seed"] != first["seed"]
    assert listed(made)[REJECTED_CLIP]["take"] == 2
    # the new take rebuilt its prompt's gallery, which now shows it
    assert gallery_builds(instance, "dusk-dolly") == 1 + 3 + 1 and gallery_builds(instance, "quick-pan") == 1 + 2
    sheet = made.read_bytes(made.path(layout.gallery("dusk-dolly"))).decode()
    assert f"<td>seed</td><td>{second['seed']}</td>" in sheet and "take 1</a>: rejected" in sheet
    # the rejected take's cost stays in the report, under "rejected", per provider and per prompt
    [report_mat] = [r.asset_materialization for r in instance.fetch_materializations(COST_REPORT_KEY, limit=1).records]
    assert report_mat is not None
    cost = first["reported_cost_usd"] if first["reported_cost_usd"] is not None else first["estimated_cost_usd"]
    assert report_mat.metadata["spent_on_rejected_takes_usd"].value == pytest.approx(cost)
    for table, key in (("per_provider", "novita"), ("per_prompt", "dusk-dolly")):
        rows = {r.data[table.removeprefix("per_")]: r.data for r in report_mat.metadata[table].value.records}
        assert rows[key]["on_rejected_usd"] == pytest.approx(cost, abs=1e-4)
        assert all(r["on_rejected_usd"] == 0 for k, r in rows.items() if k != key)

    cli(made, "review", "approve", REJECTED_CLIP, "--note", "steady now")

    for prompt, images in (("dusk-dolly", ["mountains", "tiles", "tower"]), ("quick-pan", ["mountains", "tower"])):
        rows = manifest(made, prompt)
        assert [r["image"] for r in rows] == images
        for row in rows:
            sidecar = json.loads(made.read_bytes(made.sidecar_path(prompt, row["image"])))
            stored = made.read_bytes(made.path(row["path"]))
            assert stored == made.read_bytes(made.clip_path(prompt, row["image"]))  # the approved take's bytes
            assert (row["fingerprint"], row["provider"], row["reviewer"]) == (
                sidecar["fingerprint"],
                sidecar["provider"],
                "ana",
            )
            assert row["take"] == ("2" if (row["image"], prompt) == ("tower", "dusk-dolly") else "1")
    tower = next(r for r in manifest(made, "dusk-dolly") if r["image"] == "tower")
    assert (tower["seed"], tower["note"]) == (str(second["seed"]), "steady now")

    # Dagster: one selects materialization per pair, the newest naming the approved take and the manifest
    latest = selects_materializations(instance)
    assert set(latest) == DEMO_CLIPS
    assert latest[REJECTED_CLIP].metadata["take"].value == 2
    assert latest[REJECTED_CLIP].metadata["manifest_rows"].value == 3
    assert defs.resolve_asset_graph().get(SELECTS_KEY).parent_keys == {CLIPS_KEY}
    # the clip partition shows the retake's take number, and every decision as an observation
    [clip_mat] = [
        r.asset_materialization
        for r in instance.fetch_materializations(CLIPS_KEY, limit=100).records
        if r.asset_materialization and r.asset_materialization.partition == REJECTED_CLIP
    ][:1]
    assert clip_mat is not None
    assert (clip_mat.metadata["take"].value, clip_mat.metadata["retake_of"].value) == (2, first["fingerprint"])
    observations = [
        r.event_log_entry.asset_observation
        for r in instance.fetch_observations(
            dg.AssetRecordsFilter(asset_key=CLIPS_KEY, asset_partitions=[REJECTED_CLIP]), limit=10
        ).records
    ]
    assert [(o.metadata["take"].value, o.metadata["review"].value) for o in observations if o] == [
        (2, "approved"),
        (1, "rejected"),
    ]


def test_a_withdrawn_approval_leaves_selects_and_a_later_approval_replaces_an_earlier_take(made, providers, instance):
    cli(made, "review", "approve", "tower|quick-pan")
    assert [r["image"] for r in manifest(made, "quick-pan")] == ["tower"]
    out = cli(made, "review", "reject", "tower|quick-pan", "--note", "on second look, it wobbles", "--no-retake").stdout
    assert "selects: tower|quick-pan has no approved take" in out
    assert manifest(made, "quick-pan") == []
    assert not made.exists(made.path(layout.select_clip("quick-pan", "tower")))


def test_an_approved_take_stays_selected_until_the_new_take_of_an_edited_prompt_is_approved(made, providers, instance):
    cli(made, "review", "approve", "mountains|quick-pan")
    selected = made.read_bytes(made.path(layout.select_clip("quick-pan", "mountains")))
    path = made.path("prompts", "quick-pan.yaml")
    made.write_bytes(path, made.read_bytes(path).replace(b"Gentle pan", b"Brisk pan"))
    assert run_pipeline(instance, made, providers).ok
    assert made.read_bytes(made.path(layout.select_clip("quick-pan", "mountains"))) == selected
    assert manifest(made, "quick-pan")[0]["take"] == "1"
    cli(made, "review", "approve", "mountains|quick-pan")
    [row] = manifest(made, "quick-pan")
    new = json.loads(made.read_bytes(made.sidecar_path("quick-pan", "mountains")))
    assert (row["take"], row["fingerprint"]) == ("2", new["fingerprint"])
    # (the simulator's render does not depend on the prompt's text: the two takes' bytes may be equal)
    assert made.read_bytes(made.path(row["path"])) == made.read_bytes(made.clip_path("quick-pan", "mountains"))


def test_a_review_file_edited_by_hand_is_taken_into_selects_by_the_next_run(made, providers, instance):
    sidecar = json.loads(made.read_bytes(made.sidecar_path("quick-pan", "tower")))
    review = {
        "image": "tower",
        "prompt": "quick-pan",
        "decisions": [
            {
                "fingerprint": sidecar["fingerprint"],
                "take": 1,
                "state": "approved",
                "reviewer": "bo",
                "at": "2026-12-03T08:00:00Z",
                "note": "from the review tool",
            }
        ],
    }
    made.write_bytes(made.path(layout.review("quick-pan", "tower")), json.dumps(review).encode())
    before = selects_materializations(instance)
    assert run_pipeline(instance, made, providers).ok
    assert [(r["image"], r["reviewer"]) for r in manifest(made, "quick-pan")] == [("tower", "bo")]
    after = selects_materializations(instance)
    assert set(after) - set(before) == {"tower|quick-pan"}  # events only for the pair that changed
    assert run_pipeline(instance, made, providers).ok
    assert selects_materializations(instance).keys() == after.keys()
