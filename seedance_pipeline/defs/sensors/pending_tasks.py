"""``pending_tasks_sensor``: every provider task still in flight; a dead run's tasks are collected (polled and
downloaded by a run of their own, never submitted again); attempts of unknown acceptance are looked up in the
provider's task list where it has one, and those still unsettled are shown on their clip partition for a person."""

import json
import time
from collections import Counter

import dagster as dg

from seedance_pipeline.defs.jobs import clips_job
from seedance_pipeline.defs.sensors.storage import SENSOR_INTERVAL_S
from seedance_pipeline.ledger import states
from seedance_pipeline.ledger.liveness import Orphans, retention_warning
from seedance_pipeline.ledger.store import TaskStore
from seedance_pipeline.lineage.names import CLIPS_KEY, PROVIDER_TAG, TRIGGER_TAG
from seedance_pipeline.lineage.partitions import clip_key
from seedance_pipeline.production.settle import settle_unknowns
from seedance_pipeline.providers.resource import SeedanceProviders
from seedance_pipeline.storage.resource import SeedanceStorage


@dg.sensor(
    name="pending_tasks_sensor",
    minimum_interval_seconds=SENSOR_INTERVAL_S,
    default_status=dg.DefaultSensorStatus.RUNNING,
    job=clips_job,
    description="Tracks every provider task still in flight. When the run that submitted a task has died, requests "
    "a run that collects the task's output without submitting it again.",
)
def pending_tasks_sensor(context: dg.SensorEvaluationContext, storage: SeedanceStorage, providers: SeedanceProviders):
    store = TaskStore(storage)
    dead = Orphans(context.instance)
    # Attempts of unknown acceptance are looked up in the providers' task lists first (production/settle.py).
    settlement = settle_unknowns(store, providers, context.instance, orphans=dead)
    settled = [
        dg.AssetObservation(
            asset_key=CLIPS_KEY,
            partition=str(clip_key(r.image, r.prompt)),
            metadata={"settled": r.settled or "", "attempt_id": r.attempt_id, "provider": r.provider},
        )
        for r in settlement.found + settlement.absent
    ]
    for line in settlement.lines():
        context.log.info(line)
    why = {v.record.attempt_id: v.reason for v in settlement.undecided}
    records = store.open_records()
    # The copies this tick would act on, checked against their records (TaskStore.confirmed): a stale one is
    # neither collected nor shown as needing a decision. The others are their owners' and are only counted.
    acted = {r.attempt_id for r in records if r.state in states.AWAITING_PERSON or dead(r)}
    confirmed = {r.attempt_id: r for r in store.confirmed([r for r in records if r.attempt_id in acted])}
    records = [
        confirmed.get(r.attempt_id, r) for r in records if r.attempt_id not in acted or r.attempt_id in confirmed
    ]
    cursor = json.loads(context.cursor) if context.cursor else {}
    if not records:
        idle = dg.SkipReason("no provider task in flight")
        return dg.SensorResult(asset_events=settled, skip_reason=idle, cursor=json.dumps({}))
    runs, stuck, notices = [], [], []
    counts: Counter[tuple[str, str]] = Counter()
    now = time.time()
    for rec in records:
        if warning := retention_warning(rec, now):
            context.log.warning(warning)
        counts[(rec.provider, rec.state)] += 1
        # Some states wait for a person whoever owns them; anything else is left to a live owner.
        if rec.state not in states.AWAITING_PERSON and not dead(rec):
            continue
        if rec.state in states.COLLECTABLE and rec.task_id:
            runs.append(
                dg.RunRequest(
                    run_key=f"collect:{rec.attempt_id}:{rec.updated_at:.0f}",
                    partition_key=str(clip_key(rec.image, rec.prompt)),
                    run_config={"ops": {"clips": {"config": {"collect": [rec.attempt_id]}}}},
                    tags={TRIGGER_TAG: "pending_tasks_sensor", PROVIDER_TAG: rec.provider},
                )
            )
            continue
        stuck.append(
            f"{rec.image}|{rec.prompt} on {rec.provider} ({rec.state}, attempt {rec.attempt_id}, "
            f"{now - rec.created_at:.0f} s old)"
        )
        if rec.attempt_id not in cursor.get("shown", []):
            # Once per attempt, on the clip partition itself, so the UI shows it where people look.
            notices.append(
                dg.AssetObservation(
                    asset_key=CLIPS_KEY,
                    partition=str(clip_key(rec.image, rec.prompt)),
                    metadata={
                        "needs_decision": "acceptance unknown: the provider may have taken (and may bill) this "
                        "request; it is never resubmitted automatically"
                        + (
                            f" (its task list could not settle it: {why[rec.attempt_id]})"
                            if rec.attempt_id in why
                            else ""
                        ),
                        "attempt_id": rec.attempt_id,
                        "provider": rec.provider,
                        "estimated_cost_usd": dg.MetadataValue.float(rec.estimated_cost_usd),
                        "resolve_with": f"seedance-pipeline tasks adopt {rec.attempt_id} TASK_ID  |  "
                        f"seedance-pipeline tasks retry {rec.attempt_id}  |  "
                        f"seedance-pipeline tasks abandon {rec.attempt_id}",
                    },
                )
            )
    summary = "; ".join(f"{p} {s}: {n}" for (p, s), n in sorted(counts.items()))
    context.log.info(f"{len(records)} open attempt(s): {summary}")
    for line in stuck:
        context.log.warning(f"needs a decision (acceptance unknown): {line}; see `seedance-pipeline tasks`")
    open_ids = {r.attempt_id for r in records}
    shown = sorted(
        {*(a for a in cursor.get("shown", []) if a in open_ids), *(n.metadata["attempt_id"].value for n in notices)}
    )
    skip = None if runs else dg.SkipReason(f"{len(records)} open attempt(s), none orphaned: {summary}")
    return dg.SensorResult(
        run_requests=runs, asset_events=settled + notices, skip_reason=skip, cursor=json.dumps({"shown": shown})
    )
