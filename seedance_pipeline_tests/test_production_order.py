"""The order a run's clips are planned and started in (production/produce.py ``_produce_every``): productions start
as their plans are made, tasks already at a provider first, and a plan that cannot read storage fails its clip only.
Real pipeline runs, in process, against the simulator on loopback."""

from __future__ import annotations

import threading

from seedance_pipeline.cli.runner import run_pipeline
from seedance_pipeline.production import produce
from seedance_pipeline.production.plan import PLANNING
from seedance_pipeline_tests.conftest import png, put

PROMPT = "text: a calm lake\nprovider: novita\nduration: 4\nresolution: 480p\naspect_ratio: '16:9'\n"


def _images(storage, n: int) -> list[str]:
    names = [f"img{i:02d}" for i in range(n)]
    for i, name in enumerate(names):
        put(storage, f"images/{name}.png", png(color=(10 * i, 120, 40)))
    return names


def test_the_first_clips_are_submitted_before_the_last_ones_are_planned(storage, providers, instance, monkeypatch):
    names = _images(storage, PLANNING + 5)
    put(storage, "prompts/lake.yaml", PROMPT)
    submitted = threading.Event()
    seen_before_last_plan: list[bool] = []
    generate, plan = produce.generate_clip, produce.plan_production

    async def generate_and_tell(*args, **kwargs):
        submitted.set()
        return await generate(*args, **kwargs)

    def plan_last_after_a_submit(storage_, store, it, run_id, stored):
        if it.image == names[-1]:
            # Without streaming, every plan is made before any production starts: this wait would time out.
            seen_before_last_plan.append(submitted.wait(30))
        return plan(storage_, store, it, run_id, stored)

    monkeypatch.setattr(produce, "generate_clip", generate_and_tell)
    monkeypatch.setattr(produce, "plan_production", plan_last_after_a_submit)
    report = run_pipeline(instance, storage, providers)
    assert report.ok, report.failures
    assert len(report.clips) == len(names)
    assert seen_before_last_plan == [True]


def test_a_plan_that_cannot_read_storage_fails_its_clip_only(storage, providers, instance, monkeypatch):
    names = _images(storage, 4)
    put(storage, "prompts/lake.yaml", PROMPT)
    plan = produce.plan_production

    def plan_or_fail(storage_, store, it, run_id, stored):
        if it.image == names[2]:
            raise OSError("injected: the task records cannot be listed")
        return plan(storage_, store, it, run_id, stored)

    monkeypatch.setattr(produce, "plan_production", plan_or_fail)
    report = run_pipeline(instance, storage, providers)
    assert sorted(r.clip for r in report.clips) == [f"{n}|lake" for n in names if n != names[2]]
    assert len(report.failures) == 1 and f"{names[2]}|lake" in report.failures[0]
    assert "storage error" in report.failures[0] and "injected" in report.failures[0]
