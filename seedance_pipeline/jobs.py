"""Jobs and schedules."""

from datetime import UTC, datetime, timedelta

import dagster as dg

from seedance_pipeline.assets.clips import CLIPS_KEY
from seedance_pipeline.assets.reports import cost_report
from seedance_pipeline.assets.sources import prompts, source_images

clips_job = dg.define_asset_job(
    "clips_job",
    selection=dg.AssetSelection.assets(CLIPS_KEY).without_checks(),
    description="Clips for a set of (image, prompt) partitions; used by backfills and the CLI.",
)
source_images_job = dg.define_asset_job("source_images_job", selection=[source_images])
prompts_job = dg.define_asset_job("prompts_job", selection=[prompts])
cost_report_job = dg.define_asset_job("cost_report_job", selection=[cost_report])


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


def today_utc() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d")
