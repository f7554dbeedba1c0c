"""Jobs and schedules."""

from datetime import UTC, timedelta

import dagster as dg

from seedance_pipeline.assets.reports import cost_report
from seedance_pipeline.assets.sources import prompts, source_images
from seedance_pipeline.lineage.names import CLIPS_JOB, CLIPS_KEY, COST_REPORT_JOB, PROMPTS_JOB, SOURCE_IMAGES_JOB

clips_job = dg.define_asset_job(
    CLIPS_JOB,
    selection=dg.AssetSelection.assets(CLIPS_KEY).without_checks(),
    description="Clips for a set of (image, prompt) partitions; used by backfills and the CLI.",
)
source_images_job = dg.define_asset_job(SOURCE_IMAGES_JOB, selection=[source_images])
prompts_job = dg.define_asset_job(PROMPTS_JOB, selection=[prompts])
cost_report_job = dg.define_asset_job(COST_REPORT_JOB, selection=[cost_report])


@dg.schedule(
    job=cost_report_job,
    cron_schedule="15 0 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    name="daily_cost_report",
)
def daily_cost_report(context: dg.ScheduleEvaluationContext):
    """Just after midnight UTC, report yesterday (the day that just ended)."""
    yesterday = (context.scheduled_execution_time.astimezone(UTC) - timedelta(days=1)).strftime("%Y-%m-%d")
    return dg.RunRequest(run_key=f"cost_report:{yesterday}", partition_key=yesterday)
