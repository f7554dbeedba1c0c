"""The Dagster events of one stored clip: its materialization (metadata shown in the UI, per-partition
provenance, tags) and the evaluations of its checks."""

from __future__ import annotations

import base64

import dagster as dg

from seedance_pipeline.clip.checks import LOOKS_AS_REQUESTED, CheckResults, as_checks
from seedance_pipeline.ledger.day_spend import committed_usd
from seedance_pipeline.ledger.records import AttemptRecord
from seedance_pipeline.ledger.states import AttemptState
from seedance_pipeline.lineage import versions
from seedance_pipeline.lineage.names import CLIPS_CODE_VERSION, CLIPS_KEY, OUTCOME_TAG, PROVIDER_TAG
from seedance_pipeline.planning.select import Candidate, Item
from seedance_pipeline.storage.resource import SeedanceStorage

# How a stored clip came to be (metadata ``outcome``, tag seedance/outcome).
GENERATED = "generated"
REUSED = AttemptState.REUSED.value


def clip_events(
    it: Item,
    candidate: Candidate,
    storage: SeedanceStorage,
    clip_path: str,
    sidecar: dict,
    probed,
    thumb,
    results,
    *,
    outcome: str,
    source_url: str | None = None,
) -> list:
    prepared = candidate.prepared
    reused = outcome == REUSED
    metadata = {
        "outcome": outcome,
        "provider": prepared.provider,
        "simulated": bool(sidecar.get("simulated")),
        "task_id": str(sidecar.get("task_id")),
        "seed": str(sidecar.get("seed")),
        "fingerprint": prepared.fingerprint,
        "estimated_cost_usd": dg.MetadataValue.float(0.0 if reused else float(sidecar["estimated_cost_usd"])),
        # Always a number: what this materialization cost (the provider's charge where it reports one, else
        # the estimate; 0 when reused). reported_cost_usd is there only when the provider reported a charge.
        "cost_usd": dg.MetadataValue.float(0.0 if reused else float(_charged(sidecar))),
        "path": dg.MetadataValue.path(storage.ref(clip_path)),
        "wall_time_s": dg.MetadataValue.float(
            0.0 if reused else float((sidecar.get("timings_s") or {}).get("total_s", 0.0))
        ),
        "aspect_ratio_sent": prepared.aspect_ratio_sent,
    }
    if sidecar.get("reported_cost_usd") is not None and not reused:
        metadata["reported_cost_usd"] = dg.MetadataValue.float(float(sidecar["reported_cost_usd"]))
    if reused:
        metadata["saved_usd"] = dg.MetadataValue.float(float(_charged(sidecar)))
    if sidecar.get("passed_over"):
        metadata["passed_over"] = "; ".join(sidecar["passed_over"])
    if it.retake is not None and not reused:
        metadata["take"] = it.retake.number
        metadata["retake_of"] = it.retake.of
    if sidecar.get("after_lost_attempt") and not reused:
        metadata["after_lost_attempt"] = str(sidecar["after_lost_attempt"])
    if source_url:
        metadata["source_url"] = dg.MetadataValue.url(source_url)
    if sidecar.get("source_url_expires_at"):
        metadata["source_url_expires_at"] = dg.MetadataValue.timestamp(float(sidecar["source_url_expires_at"]))
    if probed is not None:
        metadata.update(
            {
                "duration_s": round(probed.duration_s, 3),
                "fps": probed.fps,
                "size": f"{probed.width}x{probed.height}",
                "has_audio": probed.has_audio,
                "size_bytes": probed.size_bytes,
            }
        )
    if thumb:
        metadata["first_frame"] = dg.MetadataValue.md(
            f"![first frame](data:image/jpeg;base64,{base64.b64encode(thumb).decode()})"
        )
    event = versions.materialization(
        CLIPS_KEY,
        it.partition,
        data_version=None,
        code_version=CLIPS_CODE_VERSION,
        inputs=it.inputs,
        metadata=metadata,
        tags={PROVIDER_TAG: prepared.provider, OUTCOME_TAG: outcome},
    )
    return [event, *evaluations(str(it.partition), results)]


def evaluations(partition: str, results: CheckResults) -> list[dg.AssetCheckEvaluation]:
    """The clip's asset-check evaluations from its rules' results (``clip/checks.py`` ``as_checks``)."""
    return [
        dg.AssetCheckEvaluation(
            asset_key=CLIPS_KEY,
            check_name=name,
            passed=passed,
            partition=partition,
            metadata=meta,
            severity=severity(name),
        )
        for name, (passed, meta) in as_checks(results).items()
    ]


def severity(check: str) -> dg.AssetCheckSeverity:
    """WARN for the content check (a person decides), ERROR for the file checks (docs/checks.md)."""
    return dg.AssetCheckSeverity.WARN if check == LOOKS_AS_REQUESTED else dg.AssetCheckSeverity.ERROR


def lost_observation(it: Item, record: AttemptRecord) -> dg.AssetObservation:
    """On the clip partition, so the UI shows it where people look: the provider forgot an accepted task."""
    return dg.AssetObservation(
        asset_key=CLIPS_KEY,
        partition=str(it.partition),
        metadata={
            "outcome": AttemptState.LOST.value,
            "attempt_id": record.attempt_id,
            "provider": record.provider,
            "task_id": str(record.task_id),
            "charged_usd": dg.MetadataValue.float(committed_usd(record)),
            "why": "the provider accepted this task and no longer knows it: it most likely finished and was billed; "
            "its output is unknown. The next run makes the clip again as a new attempt.",
        },
    )


def _charged(sidecar: dict) -> float:
    reported = sidecar.get("reported_cost_usd")
    return float(reported if reported is not None else sidecar["estimated_cost_usd"])
