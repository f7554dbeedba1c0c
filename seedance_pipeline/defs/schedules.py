"""The daily cost report's schedule."""

from datetime import UTC, timedelta

import dagster as dg

from seedance_pipeline.defs.jobs import cost_report_job


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
