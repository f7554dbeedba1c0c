"""The names Dagster knows our assets by: asset keys, code versions, tags, groups, the pool, the jobs.

Defined once, here: the definitions (``defs/``), the planning and the CLI all refer to these.
"""

from __future__ import annotations

import dagster as dg

IMAGES_KEY = dg.AssetKey("source_images")
PROMPTS_KEY = dg.AssetKey("prompts")
CLIPS_KEY = dg.AssetKey("clips")
COST_REPORT_KEY = dg.AssetKey("cost_report")
SELECTS_KEY = dg.AssetKey("selects")
GALLERIES_KEY = dg.AssetKey("galleries")

SOURCES_CODE_VERSION = "1"
CLIPS_CODE_VERSION = "1"  # bump when the request mapping or the model changes: every clip becomes outdated

# The stamp indexes of the source assets (storage/layout.py ``stamps``) are named after the assets.
IMAGES_STAMPS = IMAGES_KEY.path[-1]
PROMPTS_STAMPS = PROMPTS_KEY.path[-1]

PROVIDER_TAG = "seedance/provider"  # on clips runs and backfills: the run queue caps each provider by it
OUTCOME_TAG = "seedance/outcome"  # on each clip materialization: generated or reused
TRIGGER_TAG = "seedance/trigger"  # who launched a run: a sensor, `backfill`, ...

SOURCES_GROUP = "sources"
CLIPS_GROUP = "clips"
REPORTS_GROUP = "reports"
REVIEW_GROUP = "review"
OWNERS = ["team:creative-ops"]
# One pool for every clips step: a global backstop across runs and providers (deploy/dagster.yaml sets its
# limit; `dagster instance concurrency set seedance_clips 0` pauses new clip steps).
CLIPS_POOL = "seedance_clips"

CLIPS_JOB = "clips_job"
SOURCE_IMAGES_JOB = "source_images_job"
PROMPTS_JOB = "prompts_job"
COST_REPORT_JOB = "cost_report_job"
SELECTS_JOB = "selects_job"
GALLERIES_JOB = "galleries_job"
