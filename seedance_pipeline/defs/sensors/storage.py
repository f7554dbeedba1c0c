"""``storage_sensor``: what changed in images/ and prompts/ becomes partitions, source refreshes and the clip
runs that new files call for (outdated clips only within an automatic-backfill budget)."""

import json

import dagster as dg

from seedance_pipeline.defs.jobs import clips_job, prompts_job, source_images_job
from seedance_pipeline.ledger.budget import SpendPolicy
from seedance_pipeline.lineage.names import IMAGES_KEY, PROMPTS_KEY, PROVIDER_TAG, TRIGGER_TAG
from seedance_pipeline.lineage.partitions import clip_range_tags, range_tags
from seedance_pipeline.planning import backfill
from seedance_pipeline.planning.cover import span
from seedance_pipeline.planning.provider_choice import planned_provider
from seedance_pipeline.planning.refresh import partition_requests, plan_refresh, retired_lines
from seedance_pipeline.planning.specs import load_specs
from seedance_pipeline.providers.resource import SeedanceProviders
from seedance_pipeline.storage.resource import SeedanceStorage

SENSOR_INTERVAL_S = 30


def _refresh_config(asset: str) -> dict:
    return {"ops": {asset: {"config": {"only_changed": True}}}}


@dg.sensor(
    name="storage_sensor",
    minimum_interval_seconds=SENSOR_INTERVAL_S,
    default_status=dg.DefaultSensorStatus.RUNNING,
    jobs=[source_images_job, prompts_job, clips_job],
    description="Watches images/ and prompts/: adds partitions, refreshes changed files, and requests the clips "
    "that new images or prompts target, one run per prompt tagged with its provider. It never "
    "regenerates outdated clips by itself unless an automatic-backfill budget is configured "
    "(SEEDANCE_AUTO_BACKFILL_BUDGET_USD) and the forecast fits in it.",
)
def storage_sensor(
    context: dg.SensorEvaluationContext, storage: SeedanceStorage, providers: SeedanceProviders, spend: SpendPolicy
):
    plan = plan_refresh(context.instance, storage)
    cursor = json.loads(context.cursor) if context.cursor else {}
    runs: list[dg.RunRequest] = []
    for name, keys, changed, job in (
        ("source_images", plan.images, plan.changed_images, source_images_job),
        ("prompts", plan.prompts, plan.changed_prompts, prompts_job),
    ):
        if changed:
            runs.append(
                dg.RunRequest(
                    run_key=f"{name}:{plan.digest(changed)}",
                    job_name=job.name,
                    run_config=_refresh_config(name),
                    tags={**range_tags(*span(keys, changed)), TRIGGER_TAG: "storage_sensor"},
                )
            )

    # Clips for sources materialized since the last tick (their refresh runs have finished by then).
    store = context.instance.event_log_storage
    after_i, after_p = cursor.get("images_sid", 0), cursor.get("prompts_sid", 0)
    fresh_i = store.get_latest_storage_id_by_partition(
        IMAGES_KEY, dg.DagsterEventType.ASSET_MATERIALIZATION, after_cursor=after_i
    )
    fresh_p = store.get_latest_storage_id_by_partition(
        PROMPTS_KEY, dg.DagsterEventType.ASSET_MATERIALIZATION, after_cursor=after_p
    )
    new_cursor = {"images_sid": max([after_i, *fresh_i.values()]), "prompts_sid": max([after_p, *fresh_p.values()])}
    new_i, new_p = set(plan.new_images), set(plan.new_prompts)  # sets: 20,000 images x a list was O(n^2)
    known_i = [k for k in plan.images if k not in new_i]
    known_p = [k for k in plan.prompts if k not in new_p]
    if (fresh_i or fresh_p) and known_i and known_p:
        # New images x all prompts, all images x new prompts, or everything when both changed; one run per
        # prompt (so each run is one provider's, for the run queue's per-provider limits). Mode "missing"
        # produces only clips never made.
        images = [k for k in known_i if k in fresh_i] if not fresh_p else known_i
        prompts = [k for k in known_p if k in fresh_p] if not fresh_i else known_p
        specs = load_specs(context.instance, set(prompts))
        for prompt in prompts:
            if images and prompt in specs:
                runs.append(
                    dg.RunRequest(
                        run_key=f"clips:{prompt}:{new_cursor['images_sid']}:{new_cursor['prompts_sid']}",
                        job_name=clips_job.name,
                        run_config={"ops": {"clips": {"config": {"mode": "missing"}}}},
                        tags={
                            **clip_range_tags(images, [prompt]),
                            TRIGGER_TAG: "storage_sensor",
                            PROVIDER_TAG: planned_provider(specs[prompt], providers),
                        },
                    )
                )
        runs += _outdated(context, storage, providers, spend, images, prompts)
    for rejected in plan.rejected:
        context.log.warning(f"ignored {rejected.name}: {rejected.reason}")
    for line in retired_lines(plan):
        context.log.info(f"retired {line}")
    partition_changes = partition_requests(plan)
    if not runs and not partition_changes:
        return dg.SensorResult(
            cursor=json.dumps(new_cursor),
            skip_reason=dg.SkipReason(
                f"no change: {len(plan.images)} images, {len(plan.prompts)} prompts"
                + (f", {len(plan.rejected)} file(s) ignored (see logs)" if plan.rejected else "")
            ),
        )
    return dg.SensorResult(
        run_requests=runs, dynamic_partitions_requests=partition_changes, cursor=json.dumps(new_cursor)
    )


def _outdated(
    context,
    storage: SeedanceStorage,
    providers: SeedanceProviders,
    spend: SpendPolicy,
    images: list[str],
    prompts: list[str],
) -> list[dg.RunRequest]:
    """Clips that changed sources made outdated: a backfill per provider if the forecast fits the automatic
    budget, else a note saying why it waits (``seedance-pipeline backfill --changed`` launches it)."""
    result = backfill.plan(context.instance, storage, providers, mode="stale", prompts=prompts, images=images)
    if not result.clips:
        return []
    summary = f"{len(result.clips)} clip(s) outdated by an edit, forecast ${result.total_usd:.4f}"
    budget = spend.auto_backfill_usd
    if budget is None or result.total_usd > budget + 1e-9:
        why = (
            "automatic backfills are off (SEEDANCE_AUTO_BACKFILL_BUDGET_USD)"
            if budget is None
            else f"over the automatic-backfill budget ${budget:.2f}"
        )
        context.log.info(f"{summary}: waiting, {why}; `seedance-pipeline backfill --changed` launches it")
        return []
    context.log.info(f"{summary}: within the automatic-backfill budget ${budget:.2f}; launching")
    graph = context.repository_def.asset_graph
    return [
        dg.RunRequest.for_asset_graph_subset(
            backfill.asset_graph_subset(graph, sorted(c.partition for c in group)),
            tags=backfill.backfill_tags(provider, "storage_sensor"),
        )
        for provider, group in result.by_provider().items()
    ]
