"""What later evidence corrected (docs/providers.md §2.5, §4.8, §5.2): a resolution a provider refuses at submit
is failed over and remembered, the charge a provider reports wins and the report shows the drift. Real runs
against the simulator on loopback."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from seedance_pipeline import pricing
from seedance_pipeline.cli.runner import run_pipeline
from seedance_pipeline.planning.backfill import plan
from seedance_pipeline.providers.resource import SeedanceProviders
from seedance_pipeline.simulator.config import ProviderSimConfig, SimConfig
from seedance_pipeline.simulator.server import SimulatorServer
from seedance_pipeline_tests.conftest import FAST, png, put

PROMPT = 'text: "Slow pan over the lake"\nprovider: {provider}\nduration: 4\nresolution: 1080p\naspect_ratio: "16:9"\n'


@pytest.fixture
def jiekou_without_1080p():
    """JieKou's API refusing 1080p at submit, as its own plugin says it does; Novita taking it."""
    timing = {"latency_min_s": FAST, "latency_max_s": FAST}
    config = SimConfig(
        providers={
            "jiekou": ProviderSimConfig(refused_resolutions=["1080p"], **timing),
            "novita": ProviderSimConfig(**timing),
        }
    )
    with SimulatorServer(config) as srv:
        yield srv


def _providers(srv) -> SeedanceProviders:
    """Only JieKou and Novita reachable (base URLs on the simulator): `auto` chooses between them."""
    urls = {p: srv.provider_url(p) for p in ("jiekou", "novita")}
    return SeedanceProviders(base_urls=urls, expected_latency_s=FAST)


def _submits(srv, provider: str) -> list[bool]:
    return [s["accepted"] for s in srv.sim.submits() if s["provider"] == provider]


def test_a_resolution_refused_at_submit_fails_over_and_is_remembered_for_later_runs(
    storage, instance, jiekou_without_1080p
):
    srv = jiekou_without_1080p
    providers = _providers(srv)
    put(storage, "images/lake.png", png((1280, 720)))
    put(storage, "prompts/pan.yaml", PROMPT.format(provider="auto"))

    report = run_pipeline(instance, storage, providers)

    assert report.ok, report.failures
    assert [(r.clip, r.provider) for r in report.clips] == [("lake|pan", "novita")]
    assert _submits(srv, "jiekou") == [False] and _submits(srv, "novita") == [True]  # refused: nothing taken
    known = json.loads(storage.read_bytes(storage.path("state", "refusals.json")))
    assert "1080p" in known["jiekou"]["1080p"]["reason"]

    # A later run (a new image) goes straight to Novita: no request that is known to be refused.
    put(storage, "images/hill.png", png((1280, 720), (40, 90, 160)))
    report = run_pipeline(instance, storage, providers)
    assert report.ok and [(r.clip, r.provider) for r in report.clips] == [("hill|pan", "novita")]
    assert _submits(srv, "jiekou") == [False]
    forecast = plan(instance, storage, providers, mode="all")
    assert {c.provider for c in forecast.clips} == {"novita"}


def test_a_prompt_naming_the_refusing_provider_is_stopped_before_sending(storage, instance, jiekou_without_1080p):
    srv = jiekou_without_1080p
    providers = _providers(srv)
    put(storage, "images/lake.png", png((1280, 720)))
    put(storage, "prompts/pan.yaml", PROMPT.format(provider="jiekou"))
    first = run_pipeline(instance, storage, providers)
    assert not first.ok and _submits(srv, "jiekou") == [False]  # learned from the one refusal

    put(storage, "images/hill.png", png((1280, 720), (40, 90, 160)))
    second = run_pipeline(instance, storage, providers)
    assert _submits(srv, "jiekou") == [False]  # nothing more was sent
    [failure] = [f for f in second.failures if "hill|pan" in f]
    assert "resolution='1080p'" in failure and "jiekou refused 1080p at submit" in failure
    assert "its own ComfyUI plugin says 480p and 720p only" in failure and "refusals.json" in failure


def test_a_charge_the_provider_reports_wins_and_the_report_shows_the_drift(storage, providers, instance, sim):
    put(storage, "images/lake.png", png())
    put(storage, "prompts/a.yaml", 'text: "a"\nprovider: runpod\nduration: 4\nresolution: 480p\n')
    put(storage, "prompts/b.yaml", 'text: "b"\nprovider: vibedream\nduration: 4\nresolution: 480p\n')
    put(storage, "prompts/c.yaml", 'text: "c"\nprovider: novita\nduration: 4\nresolution: 480p\n')
    report = run_pipeline(instance, storage, providers)
    assert report.ok, report.failures
    day = report.cost_report.rsplit("/", 2)[-2]
    df = pd.read_parquet(storage.path("reports", day, "cost_report.parquet"))
    by = df.set_index("provider")
    # RunPod reports output.cost, VibeDream costCents: the charge is theirs; Novita reports none: our estimate.
    assert by.loc["runpod", "charged_usd"] == by.loc["runpod", "reported_usd"]
    assert by.loc["vibedream", "charged_usd"] == by.loc["vibedream", "reported_usd"]
    assert (
        pd.isna(by.loc["novita", "reported_usd"])
        and by.loc["novita", "charged_usd"] == by.loc["novita", "estimated_usd"]
    )
    summary = storage.read_bytes(storage.path("reports", day, "cost_report.md")).decode()
    assert "## Estimate against what the provider reported" in summary
    table = summary.split("## Estimate against what the provider reported", 1)[1]
    assert "runpod" in table and "vibedream" in table and "novita" not in table


def test_wavespeeds_published_prices_replace_the_assumed_token_rates():
    # docs/providers.md §4.8: 5 s at 480p $0.06 silent, $0.12 with audio; at 720p $0.13 / $0.26.
    def usd(resolution, audio, seconds=5):
        w, h = (864, 496) if resolution == "480p" else (1280, 720)
        return pricing.estimate(
            "wavespeed", resolution=resolution, duration_s=seconds, generate_audio=audio, width=w, height=h
        )

    assert [usd("480p", False).usd, usd("480p", True).usd, usd("720p", False).usd, usd("720p", True).usd] == (
        pytest.approx([0.06, 0.12, 0.13, 0.26])
    )
    assert usd("480p", True, seconds=10).usd == pytest.approx(0.24) and not usd("480p", False).assumption
