"""The content rules (issue 17 §1): each of the simulator's output faults trips exactly its rule, good renders
trip none, through the real renderer and PyAV; and through the pipeline, a faulted clip is stored, its content
check fails with severity WARN naming that rule alone, and every other check of every clip passes."""

from __future__ import annotations

import io
import json

import dagster as dg
import pytest
from PIL import Image, ImageDraw

from seedance_pipeline.cli.demo_data import _tower
from seedance_pipeline.cli.runner import run_pipeline
from seedance_pipeline.clip import checks
from seedance_pipeline.clip.content import source_thumb
from seedance_pipeline.clip.probe import probe_video
from seedance_pipeline.definitions import build_definitions
from seedance_pipeline.lineage.names import CLIPS_KEY
from seedance_pipeline.providers.resource import SeedanceProviders
from seedance_pipeline.simulator.config import FaultRule
from seedance_pipeline.simulator.render import CONTENT_FAULTS, render_clip
from seedance_pipeline.simulator.server import SimulatorServer
from seedance_pipeline.storage import layout
from seedance_pipeline_tests.conftest import FAST, fast_config, png, put

W, H, SECONDS = 480, 272, 2
TRIPS = {
    "wrong_image": checks.RESEMBLES_SOURCE,
    "frozen": checks.NOT_FROZEN,
    "black": checks.NOT_BLANK,
    "silent": checks.AUDIO_PRESENT,
}


def _shapes() -> bytes:
    img = Image.new("RGB", (900, 600), (200, 210, 230))
    draw = ImageDraw.Draw(img)
    draw.ellipse([80, 80, 420, 420], fill=(200, 40, 40))
    draw.rectangle([500, 200, 850, 560], fill=(30, 90, 160))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


SOURCES = {"tower": _tower((720, 1280)), "shapes": _shapes(), "flat": png((640, 480), (10, 120, 40))}


def failed(image: bytes, *, last: bytes | None = None, content: str | None = None, camera_fixed=False, **kw):
    clip = render_clip(image, W, H, SECONDS, True, 5, last_image=last, content=content)
    probe = probe_video(clip, sample_content=True)
    sources = checks.Sources(
        source_thumb(image, W, H),
        source_thumb(kw.get("compare_last", last), W, H) if (last or "compare_last" in kw) else None,
        has_last_image=last is not None or "compare_last" in kw,
    )
    results = checks.evaluate(probe, checks.Expected(W, H, SECONDS, True, camera_fixed), sources=sources)
    return {name for name, (ok, _) in results.items() if not ok}, results


@pytest.mark.parametrize("source", sorted(SOURCES))
def test_a_good_render_trips_no_check(source):
    bad, results = failed(SOURCES[source])
    assert bad == set(), results
    assert set(results) == set(checks.RULES)
    assert results[checks.ENDS_ON_LAST_IMAGE][1]["applies"] is False


def test_a_render_that_ends_on_its_last_image_trips_no_check():
    bad, results = failed(SOURCES["tower"], last=SOURCES["shapes"])
    assert bad == set(), results
    assert results[checks.ENDS_ON_LAST_IMAGE][1]["similarity"] >= checks.MIN_RESEMBLANCE


@pytest.mark.parametrize("fault", CONTENT_FAULTS)
@pytest.mark.parametrize("source", ["tower", "shapes"])
def test_each_output_fault_trips_exactly_its_check(fault, source):
    bad, results = failed(SOURCES[source], content=fault)
    assert bad == {TRIPS[fault]}, results
    figure = results[TRIPS[fault]][1]
    assert figure and "error" not in figure  # judged on a figure, recorded in the metadata


def test_a_clip_that_ignores_the_last_image_trips_ends_on_last_image_only():
    bad, results = failed(SOURCES["tower"], compare_last=SOURCES["shapes"])
    assert bad == {checks.ENDS_ON_LAST_IMAGE}, results
    assert results[checks.ENDS_ON_LAST_IMAGE][1]["similarity"] < checks.MIN_RESEMBLANCE


def test_a_still_clip_is_not_judged_frozen_when_camera_fixed_was_requested():
    bad, results = failed(SOURCES["shapes"], content="frozen", camera_fixed=True)
    assert bad == set()
    meta = results[checks.NOT_FROZEN][1]
    assert meta["judged"] is False and meta["motion"] < checks.MIN_MOTION


def test_silence_is_a_number_in_the_metadata():
    _, results = failed(SOURCES["flat"], content="silent")
    meta = results[checks.AUDIO_PRESENT][1]
    assert meta["audio_rms_dbfs"] == checks.SILENCE_FLOOR_DBFS and meta["digital_silence"] is True


def test_a_clip_that_cannot_be_opened_fails_every_check():
    results = checks.evaluate(None, checks.Expected(W, H, SECONDS, True), "not an MP4")
    assert {name for name, (ok, _) in results.items() if not ok} == set(checks.RULES)
    folded = checks.as_checks(results)
    assert {name for name, (ok, _) in folded.items() if not ok} == set(checks.CHECKS)
    assert folded[checks.LOOKS_AS_REQUESTED][1]["tripped"] == ", ".join(checks.CONTENT_RULES)
    assert folded[checks.LOOKS_AS_REQUESTED][1]["not_frozen.error"] == "not an MP4"


@pytest.mark.parametrize("fault", CONTENT_FAULTS)
def test_the_content_check_names_the_rule_a_fault_trips_and_keeps_every_figure(fault):
    _, results = failed(SOURCES["tower"], content=fault)
    folded = checks.as_checks(results)
    assert list(folded) == list(checks.CHECKS)
    assert folded[checks.PLAYS_TO_END] == results[checks.PLAYS_TO_END]  # a file check is its rule, unchanged
    passed, meta = folded[checks.LOOKS_AS_REQUESTED]
    assert passed is False and meta["tripped"] == TRIPS[fault]
    for rule in checks.CONTENT_RULES:
        assert {k: v for k, v in meta.items() if k.startswith(f"{rule}.")} == {
            f"{rule}.{k}": v for k, v in results[rule][1].items()
        }


def test_the_content_check_passes_with_tripped_none_when_every_rule_passes():
    _, results = failed(SOURCES["shapes"])
    passed, meta = checks.as_checks(results)[checks.LOOKS_AS_REQUESTED]
    assert passed is True and meta["tripped"] == "none"
    assert meta["ends_on_last_image.applies"] is False


def test_a_probe_without_content_sampling_has_the_file_checks_only():
    clip = render_clip(SOURCES["tower"], W, H, SECONDS, True, 5)
    results = checks.evaluate(probe_video(clip), checks.Expected(W, H, SECONDS, True))
    assert set(checks.as_checks(results)) == set(checks.FILE_CHECKS)


PROMPT = 'text: "{text}"\nimages: ["{image}"]\nprovider: novita\nduration: 4\nresolution: 480p\ngenerate_audio: true\n'


@pytest.mark.slow
def test_through_the_pipeline_a_faulted_clip_is_stored_and_only_its_check_warns(storage, instance):
    """Prompt markers make three faults; a fault rule over HTTP (the simulator's config) makes the fourth."""
    config = fast_config(faults=[FaultRule(kind="black", provider="novita", endpoint="submit", times=1)])
    put(storage, "images/tower.png", SOURCES["tower"])
    put(storage, "images/shapes.png", SOURCES["shapes"])
    # The fault rule applies to the first submit: the first run makes only that clip.
    put(storage, "prompts/black.yaml", PROMPT.format(text="a slow push-in", image="tower"))
    with SimulatorServer(config) as sim:
        providers = SeedanceProviders(simulator_url=sim.base_url, simulator_latency_s=FAST)
        first = run_pipeline(instance, storage, providers)
        assert first.ok, first.failures
        for prompt, image, marker in (
            ("good", "tower", ""),
            ("frozen", "tower", "[sim:frozen] "),
            ("silent", "shapes", "[sim:silent] "),
            ("wrong", "shapes", "[sim:wrong_image] "),
        ):
            put(storage, f"prompts/{prompt}.yaml", PROMPT.format(text=f"{marker}a slow push-in", image=image))
        report = run_pipeline(instance, storage, providers)
        assert report.ok, report.failures
    expected_failures = {
        "tower|black": checks.NOT_BLANK,
        "tower|frozen": checks.NOT_FROZEN,
        "shapes|silent": checks.AUDIO_PRESENT,
        "shapes|wrong": checks.RESEMBLES_SOURCE,
    }
    clips = sorted([*expected_failures, "tower|good"])
    seen: dict[str, set[str]] = {}
    tripped: dict[str, str] = {}
    for name in checks.CHECKS:
        key = dg.AssetCheckKey(CLIPS_KEY, name)
        history = instance.event_log_storage.get_asset_check_execution_history(key, limit=50)
        # every clip's every check, once
        assert sorted(str(h.event.dagster_event.event_specific_data.partition) for h in history) == clips
        for h in history:
            data = h.event.dagster_event.event_specific_data
            if not data.passed:
                seen.setdefault(str(data.partition), set()).add(name)
                assert data.severity == dg.AssetCheckSeverity.WARN
                tripped[str(data.partition)] = data.metadata["tripped"].value
    assert seen == {pair: {checks.LOOKS_AS_REQUESTED} for pair in expected_failures}
    assert tripped == expected_failures
    for pair, name in expected_failures.items():
        image, prompt = pair.split("|")
        sidecar = json.loads(storage.read_bytes(storage.sidecar_path(prompt, image)))
        assert storage.exists(storage.clip_path(prompt, image))  # a WARN stores the clip: a person decides
        assert {n for n, ok in sidecar["checks"].items() if not ok} == {name}
    good = json.loads(storage.read_bytes(storage.sidecar_path("good", "tower")))
    assert all(good["checks"].values())
    # the gallery `run` built shows the warning as a warning, not as a failed take
    sheet = storage.read_bytes(storage.path(layout.gallery("frozen"))).decode()
    assert "<td>not_frozen</td><td><span class='warn'>warning</span></td>" in sheet and "FAILED" not in sheet
    # The standalone checks (defs/checks.py) re-probe a stored clip on demand and judge it as the clips step did
    jobs = [
        dg.define_asset_job(name, dg.AssetSelection.checks(dg.AssetCheckKey(CLIPS_KEY, name))) for name in checks.CHECKS
    ]
    defs = dg.Definitions.merge(build_definitions(storage, providers), dg.Definitions(jobs=jobs))
    resolved = {name: defs.resolve_job_def(name) for name in checks.CHECKS}
    for pair, rule in (*expected_failures.items(), ("tower|good", None)):
        for name, job in resolved.items():
            (evaluation,) = job.execute_in_process(
                instance=instance, tags={"dagster/partition": pair}
            ).get_asset_check_evaluations()
            if name == checks.LOOKS_AS_REQUESTED:
                assert (evaluation.passed, evaluation.metadata["tripped"].value) == (rule is None, rule or "none"), pair
            else:
                assert evaluation.passed, (pair, name, evaluation.metadata)
