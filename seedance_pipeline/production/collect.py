"""Collecting a task a dead run left at the provider: its request rebuilt from the attempt's record, so the
clip is polled and downloaded as it was asked for, never submitted again."""

from __future__ import annotations

from seedance_pipeline import pricing
from seedance_pipeline.clip.prepare import PreparedRequest
from seedance_pipeline.core.request import GenerationRequest
from seedance_pipeline.ledger.records import AttemptRecord
from seedance_pipeline.providers.base import WireRequest


def prepared_from_record(record: AttemptRecord) -> PreparedRequest:
    """The request as it was prepared when this attempt was submitted (for collecting its output)."""

    req = record.request
    return PreparedRequest(
        provider=record.provider,
        request=GenerationRequest(**{k: req[k] for k in GenerationRequest.model_fields if k in req}),
        wire=WireRequest("POST", "(submitted earlier)"),
        fingerprint=record.fingerprint,
        aspect_ratio_sent=req.get("aspect_ratio_sent", req.get("aspect_ratio")),
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
