"""The prompt specs a plan is made from: exactly as the prompts asset recorded them (what lineage says we used),
not as the files read now."""

from __future__ import annotations

import dagster as dg

from seedance_pipeline.lineage.names import PROMPTS_KEY
from seedance_pipeline.planning.prompt_spec import PromptSpec


def load_specs(instance: dg.DagsterInstance, prompt_keys: set[str]) -> dict[str, PromptSpec]:
    """The prompt specs exactly as the prompts asset recorded them (what lineage says we used)."""
    specs = {}
    for key in sorted(prompt_keys):
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=PROMPTS_KEY, asset_partitions=[key]), limit=1
        ).records
        mat = records[0].asset_materialization if records else None
        if mat is not None:
            spec_meta = mat.metadata.get("spec")
            if spec_meta is not None:
                specs[key] = PromptSpec.model_validate(spec_meta.value)
    return specs
