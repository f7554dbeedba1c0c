"""The ``seedance_pipeline`` code location: ``defs``, and ``build_definitions`` for other resources (tests,
the CLI)."""

import dagster as dg

from seedance_pipeline.defs.assets.clips import clips
from seedance_pipeline.defs.assets.galleries import galleries
from seedance_pipeline.defs.assets.reports import cost_report
from seedance_pipeline.defs.assets.selects import selects
from seedance_pipeline.defs.assets.sources import prompts, source_images
from seedance_pipeline.defs.checks import CLIP_CHECKS
from seedance_pipeline.defs.jobs import (
    clips_job,
    cost_report_job,
    galleries_job,
    prompts_job,
    selects_job,
    source_images_job,
)
from seedance_pipeline.defs.resources import resources
from seedance_pipeline.defs.schedules import daily_cost_report
from seedance_pipeline.defs.sensors.pending_tasks import pending_tasks_sensor
from seedance_pipeline.defs.sensors.reviews import review_sensor
from seedance_pipeline.defs.sensors.storage import storage_sensor
from seedance_pipeline.ledger.budget import SpendPolicy
from seedance_pipeline.providers.resource import SeedanceProviders
from seedance_pipeline.storage.resource import SeedanceStorage

ASSETS = [source_images, prompts, clips, selects, galleries, cost_report]
CHECKS = CLIP_CHECKS


def build_definitions(
    storage: SeedanceStorage | None = None, providers: SeedanceProviders | None = None, spend: SpendPolicy | None = None
) -> dg.Definitions:
    return dg.Definitions(
        assets=ASSETS,
        asset_checks=CHECKS,
        sensors=[storage_sensor, pending_tasks_sensor, review_sensor],
        schedules=[daily_cost_report],
        jobs=[source_images_job, prompts_job, clips_job, selects_job, galleries_job, cost_report_job],
        resources=resources(storage, providers, spend),
        # Every job is one main step (clips: asynchronous I/O, many partitions at once): run it in the run
        # worker itself. The default multiprocess executor starts a second Python process per run, which on a
        # queued backfill costs more than the step (benchmarks/README.md, "Measurements behind the code", M6).
        executor=dg.in_process_executor,
    )


defs = build_definitions()
