"""The jobs: one per asset, each run over many partitions."""

import dagster as dg

from seedance_pipeline.defs.assets.galleries import galleries
from seedance_pipeline.defs.assets.reports import cost_report
from seedance_pipeline.defs.assets.selects import selects
from seedance_pipeline.defs.assets.sources import prompts, source_images
from seedance_pipeline.lineage.names import (
    CLIPS_JOB,
    CLIPS_KEY,
    COST_REPORT_JOB,
    GALLERIES_JOB,
    PROMPTS_JOB,
    SELECTS_JOB,
    SOURCE_IMAGES_JOB,
)

clips_job = dg.define_asset_job(
    CLIPS_JOB,
    selection=dg.AssetSelection.assets(CLIPS_KEY).without_checks(),
    description="Clips for a set of (image, prompt) partitions; used by backfills and the CLI.",
)
source_images_job = dg.define_asset_job(SOURCE_IMAGES_JOB, selection=[source_images])
prompts_job = dg.define_asset_job(PROMPTS_JOB, selection=[prompts])
cost_report_job = dg.define_asset_job(COST_REPORT_JOB, selection=[cost_report])
selects_job = dg.define_asset_job(
    SELECTS_JOB, selection=[selects], description="The approved takes of a set of clip partitions, and their manifests."
)
galleries_job = dg.define_asset_job(
    GALLERIES_JOB, selection=[galleries], description="The review contact sheets of a set of prompts."
)
