"""The ``seedance_pipeline`` code location."""

import warnings

import dagster as dg

warnings.filterwarnings("ignore", category=dg.BetaWarning)
warnings.filterwarnings("ignore", category=dg.PreviewWarning)

from seedance_pipeline.assets.clip_checks import matches_request, plays_to_end  # noqa: E402
from seedance_pipeline.assets.clips import clips  # noqa: E402
from seedance_pipeline.assets.reports import cost_report  # noqa: E402
from seedance_pipeline.assets.sources import prompts, source_images  # noqa: E402
from seedance_pipeline.jobs import clips_job, cost_report_job, daily_cost_report, prompts_job, source_images_job  # noqa: E402
from seedance_pipeline.ledger.budget import SpendPolicy  # noqa: E402
from seedance_pipeline.providers.resource import SeedanceProviders  # noqa: E402
from seedance_pipeline.sensors import pending_tasks_sensor, storage_sensor  # noqa: E402
from seedance_pipeline.storage.resource import SeedanceStorage  # noqa: E402

ASSETS = [source_images, prompts, clips, cost_report]
CHECKS = [plays_to_end, matches_request]


def build_definitions(
    storage: SeedanceStorage | None = None, providers: SeedanceProviders | None = None, spend: SpendPolicy | None = None
) -> dg.Definitions:
    return dg.Definitions(
        assets=ASSETS,
        asset_checks=CHECKS,
        sensors=[storage_sensor, pending_tasks_sensor],
        schedules=[daily_cost_report],
        jobs=[source_images_job, prompts_job, clips_job, cost_report_job],
        resources={
            "storage": storage or SeedanceStorage.from_env(),
            "providers": providers or SeedanceProviders.from_env(),
            "spend": spend or SpendPolicy.from_env(),
        },
        # Every job is one main step (clips: asynchronous I/O, many partitions at once): run it in the run
        # worker itself. The default multiprocess executor starts a second Python process per run, which on a
        # queued backfill costs more than the step (measured on the Postgres backfill test).
        executor=dg.in_process_executor,
    )


defs = build_definitions()
