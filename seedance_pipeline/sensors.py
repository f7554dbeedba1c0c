"""Sensors: one watches storage, one watches provider tasks still in flight."""


import json
import time
from collections import Counter

import dagster as dg
from dagster._core.events import DagsterEventType

from .assets.clips import CLIPS_KEY
from .assets.sources import IMAGES_KEY, PROMPTS_KEY
from .jobs import clips_job, prompts_job, source_images_job
from .partitions import clip_key
from .refresh import add_requests, clip_range_tags, plan_refresh, range_tags
from .storage import SeedanceStorage
from .tasks import TaskStore

SENSOR_INTERVAL_S = 30
FINISHED_RUN_STATUSES = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}


def _refresh_config(asset: str) -> dict:
    return {"ops": {asset: {"config": {"only_changed": True}}}}


@dg.sensor(
    name="storage_sensor", minimum_interval_seconds=SENSOR_INTERVAL_S, default_status=dg.DefaultSensorStatus.RUNNING,
    jobs=[source_images_job, prompts_job, clips_job],
    description="Watches images/ and prompts/: adds partitions, refreshes changed files, and requests the clips "
                "that new images or prompts target (never regenerates outdated clips by itself).",
)
def storage_sensor(context: dg.SensorEvaluationContext, storage: SeedanceStorage):
    plan = plan_refresh(context.instance, storage)
    cursor = json.loads(context.cursor) if context.cursor else {}
    runs: list[dg.RunRequest] = []
    for name, keys, changed, job in (("source_images", plan.images, plan.changed_images, source_images_job),
                                     ("prompts", plan.prompts, plan.changed_prompts, prompts_job)):
        if changed:
            runs.append(dg.RunRequest(
                run_key=f"{name}:{plan.digest(changed)}", job_name=job.name, run_config=_refresh_config(name),
                tags={**range_tags(keys[0], keys[-1]), "seedance/trigger": "storage_sensor"}))

    # Clips for sources materialized since the last tick (their refresh runs have finished by then).
    store = context.instance.event_log_storage
    after_i, after_p = cursor.get("images_sid", 0), cursor.get("prompts_sid", 0)
    fresh_i = store.get_latest_storage_id_by_partition(IMAGES_KEY, DagsterEventType.ASSET_MATERIALIZATION, after_cursor=after_i)
    fresh_p = store.get_latest_storage_id_by_partition(PROMPTS_KEY, DagsterEventType.ASSET_MATERIALIZATION, after_cursor=after_p)
    new_cursor = {"images_sid": max([after_i, *fresh_i.values()]), "prompts_sid": max([after_p, *fresh_p.values()])}
    new_i, new_p = set(plan.new_images), set(plan.new_prompts)  # sets: 20,000 images x a list was O(n^2)
    known_i = [k for k in plan.images if k not in new_i]
    known_p = [k for k in plan.prompts if k not in new_p]
    if (fresh_i or fresh_p) and known_i and known_p:
        # One rectangle, so no pair is ever in two concurrent runs: new images x all prompts, all images x
        # new prompts, or everything when both changed. Mode "missing" produces only clips never made.
        images = [k for k in known_i if k in fresh_i] if not fresh_p else known_i
        prompts = [k for k in known_p if k in fresh_p] if not fresh_i else known_p
        if images and prompts:
            runs.append(dg.RunRequest(
                run_key=f"clips:{new_cursor['images_sid']}:{new_cursor['prompts_sid']}", job_name=clips_job.name,
                run_config={"ops": {"clips": {"config": {"mode": "missing"}}}},
                tags={**clip_range_tags(images, prompts), "seedance/trigger": "storage_sensor"}))
    for rejected in plan.rejected:
        context.log.warning(f"ignored {rejected.name}: {rejected.reason}")
    if not runs and not plan.new_images and not plan.new_prompts:
        return dg.SensorResult(cursor=json.dumps(new_cursor), skip_reason=dg.SkipReason(
            f"no change: {len(plan.images)} images, {len(plan.prompts)} prompts"
            + (f", {len(plan.rejected)} file(s) ignored (see logs)" if plan.rejected else "")))
    return dg.SensorResult(run_requests=runs, dynamic_partitions_requests=add_requests(plan), cursor=json.dumps(new_cursor))


@dg.sensor(
    name="pending_tasks_sensor", minimum_interval_seconds=SENSOR_INTERVAL_S,
    default_status=dg.DefaultSensorStatus.RUNNING, job=clips_job,
    description="Tracks every provider task still in flight. When the run that submitted a task has died, requests "
                "a run that collects the task's output without submitting it again.",
)
def pending_tasks_sensor(context: dg.SensorEvaluationContext, storage: SeedanceStorage):
    records = TaskStore(storage).open_records()
    if not records:
        return dg.SkipReason("no provider task in flight")
    alive: dict[str, bool] = {}
    runs, states, stuck = [], Counter(), []
    now = time.time()
    for rec in records:
        if rec.run_id not in alive:
            run = context.instance.get_run_by_id(rec.run_id) if rec.run_id else None
            alive[rec.run_id] = run is not None and run.status not in FINISHED_RUN_STATUSES
        states[(rec.provider, rec.state)] += 1
        if alive[rec.run_id]:
            continue
        if rec.state in ("accepted", "download_failed") and rec.task_id:
            runs.append(dg.RunRequest(
                run_key=f"collect:{rec.attempt_id}:{rec.updated_at:.0f}",
                partition_key=str(clip_key(rec.image, rec.prompt)),
                run_config={"ops": {"clips": {"config": {"collect": [rec.attempt_id]}}}},
                tags={"seedance/trigger": "pending_tasks_sensor", "seedance/provider": rec.provider}))
        else:
            stuck.append(f"{rec.image}|{rec.prompt} on {rec.provider} ({rec.state}, attempt {rec.attempt_id}, "
                         f"{now - rec.created_at:.0f} s old)")
    summary = "; ".join(f"{p} {s}: {n}" for (p, s), n in sorted(states.items()))
    context.log.info(f"{len(records)} open attempt(s): {summary}")
    for line in stuck:
        context.log.warning(f"needs a decision (acceptance unknown): {line}; see `seedance-pipeline tasks`")
    if not runs:
        return dg.SkipReason(f"{len(records)} open attempt(s), none orphaned: {summary}")
    return runs
