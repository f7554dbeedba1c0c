"""The partition definitions, in one place (every asset, sensor and job imports them from here)."""

from __future__ import annotations

import dagster as dg

IMAGES = "images"
PROMPTS = "prompts"

image_partitions = dg.DynamicPartitionsDefinition(name=IMAGES)
prompt_partitions = dg.DynamicPartitionsDefinition(name=PROMPTS)
# Dimensions sort by name, so a clip key reads "<image>|<prompt>".
clip_partitions = dg.MultiPartitionsDefinition({"image": image_partitions, "prompt": prompt_partitions})
daily_partitions = dg.DailyPartitionsDefinition(start_date="2026-01-01", end_offset=1)


def clip_key(image: str, prompt: str) -> dg.MultiPartitionKey:
    return dg.MultiPartitionKey({"image": image, "prompt": prompt})
