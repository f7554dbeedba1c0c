"""Collecting a task a dead run left at the provider: its request rebuilt from the attempt's record, so the
clip is polled and downloaded as it was asked for, never submitted again."""

from __future__ import annotations

from collections.abc import Callable

import dagster as dg

from seedance_pipeline import pricing
from seedance_pipeline.clip.prepare import PreparedRequest
from seedance_pipeline.core.request import GenerationRequest
from seedance_pipeline.ledger import states
from seedance_pipeline.ledger.records import AttemptRecord
from seedance_pipeline.ledger.store import TaskStore
from seedance_pipeline.lineage import versions
from seedance_pipeline.lineage.names import IMAGES_KEY, PROMPTS_KEY
from seedance_pipeline.planning.select import Candidate, Item
from seedance_pipeline.providers.base import WireRequest


def prepared_from_record(record: AttemptRecord) -> PreparedRequest:
    """The request as it was prepared when this attempt was submitted (for collecting its output)."""

    req = record.request
    return PreparedRequest(
        provider=record.provider,
        request=GenerationRequest(**{k: req[k] for k in GenerationRequest.model_fields if k in req}),
        build_wire=lambda: WireRequest("POST", "(submitted earlier)"),
        fingerprint=record.fingerprint,
        aspect_ratio_sent=str(req.get("aspect_ratio_sent", req.get("aspect_ratio"))),
        width=req["width"],
        height=req["height"],
        image_sha256=req.get("image_sha256", ""),
        last_image_sha256=req.get("last_image_sha256"),
        estimate=pricing.CostEstimate(
            usd=record.estimated_cost_usd,
            unit="recorded",
            rate_usd=0.0,
            quantity=0.0,
            assumption=record.estimate_is_assumption,
            source="task record",
        ),
    )


def collect_items(
    instance: dg.DagsterInstance,
    log: Callable[[str], None],
    attempt_ids: list[str],
    store: TaskStore,
    keys: list[tuple[str, str]],
) -> list[Item]:
    """Attempts a dead run left at the provider, as items that only poll and download (never submit)."""
    images = {i for i, _ in keys}
    prompts = {p for _, p in keys}
    image_versions = versions.latest_versions(instance, IMAGES_KEY, images)
    prompt_versions = versions.latest_versions(instance, PROMPTS_KEY, prompts)
    items = []
    for attempt_id in attempt_ids:
        rec = store.load(attempt_id)
        if rec.state not in states.COLLECTABLE or not rec.task_id:
            log(f"attempt {attempt_id} is {rec.state}: nothing to collect")
            continue
        if (rec.image, rec.prompt) not in keys:
            raise dg.Failure(f"attempt {attempt_id} belongs to {rec.image}|{rec.prompt}, not to this run's partitions")
        inputs = {
            k: v
            for k, v in ((IMAGES_KEY, image_versions.get(rec.image)), (PROMPTS_KEY, prompt_versions.get(rec.prompt)))
            if v
        }
        items.append(
            Item(
                rec.image,
                rec.prompt,
                spec=None,
                inputs=inputs,
                candidates=[Candidate(prepared_from_record(rec), rec.simulated)],
                record=rec,
            )
        )
    return items
