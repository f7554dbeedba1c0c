"""Materializations recorded without a run, many per transaction: how ``seedance-pipeline run`` registers images.

Each event is the one Dagster's ``report_runless_asset_event`` builds (a run id of "", shown in the UI as
reported, not under a run), and the partition's data version and metadata are the ones the ``source_images``
asset's run would record. ``report_runless_asset_event`` and a run both store one event at a time; here a batch
goes to the event log's ``store_event_batch``, which the project's SQLite event log and dagster-postgres write in
one transaction per file (20,000 images: benchmarks/README.md M12). A process that stops half-way keeps every
batch it stored; the images' stamps are recorded after the last batch, so the next refresh registers all of that
refresh's images again (the stored ones with the same data version: nothing turns stale).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

import dagster as dg

from seedance_pipeline import dagster_internals as di

# Events per transaction: about 5 KB each with an image's preview, so a batch is a few MB.
BATCH = 500


def _entry(materialization: dg.AssetMaterialization) -> di.EventLogEntry:
    event = di.DagsterEvent(
        event_type_value=dg.DagsterEventType.ASSET_MATERIALIZATION.value,
        event_specific_data=di.StepMaterializationData(materialization),
        job_name=di.RUNLESS_JOB_NAME,
    )
    return di.EventLogEntry(
        user_message="",
        level=logging.INFO,
        job_name=di.RUNLESS_JOB_NAME,
        run_id=di.RUNLESS_RUN_ID,
        error_info=None,
        timestamp=time.time(),
        step_key=None,
        dagster_event=event,
    )


def report_materializations(
    instance: dg.DagsterInstance, materializations: Iterable[dg.AssetMaterialization], batch: int = BATCH
) -> int:
    """Store ``materializations`` (of one asset) without a run, ``batch`` at a time; how many were stored."""
    pending: list[di.EventLogEntry] = []
    stored = 0
    for materialization in materializations:
        pending.append(_entry(materialization))
        if len(pending) == batch:
            instance.event_log_storage.store_event_batch(pending)
            stored, pending = stored + len(pending), []
    if pending:
        instance.event_log_storage.store_event_batch(pending)
        stored += len(pending)
    return stored
