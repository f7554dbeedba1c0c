"""The partition definitions and the partition keys and ranges of runs, in one place."""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg

from seedance_pipeline.dagster_internals import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

IMAGES = "images"
PROMPTS = "prompts"

image_partitions = dg.DynamicPartitionsDefinition(name=IMAGES)
prompt_partitions = dg.DynamicPartitionsDefinition(name=PROMPTS)
# Dimensions sort by name, so a clip key reads "<image>|<prompt>".
clip_partitions = dg.MultiPartitionsDefinition({"image": image_partitions, "prompt": prompt_partitions})
daily_partitions = dg.DailyPartitionsDefinition(start_date="2026-01-01", end_offset=1)


def clip_key(image: str, prompt: str) -> dg.MultiPartitionKey:
    return dg.MultiPartitionKey({"image": image, "prompt": prompt})


def clip_partition(image: str, prompt: str) -> str:
    """``str(clip_key(image, prompt))`` without building the key (100,000 keys cost 1.5 s to build)."""
    return f"{image}|{prompt}"


def split_key(key: str | dg.MultiPartitionKey) -> tuple[str, str]:
    """(image, prompt) of a clip partition key."""
    if isinstance(key, dg.MultiPartitionKey):
        dims = key.keys_by_dimension
        return dims["image"], dims["prompt"]
    image, prompt = key.split("|")
    return image, prompt


def range_tags(start: str, end: str) -> dict[str, str]:
    """The tags of a run over the partitions ``start`` .. ``end`` (in partition order)."""
    return {ASSET_PARTITION_RANGE_START_TAG: start, ASSET_PARTITION_RANGE_END_TAG: end}


def clip_range_tags(images: list[str], prompts: list[str]) -> dict[str, str]:
    """The rectangle images[0..-1] x prompts[0..-1] (ranges follow partition order)."""
    return range_tags(str(clip_key(images[0], prompts[0])), str(clip_key(images[-1], prompts[-1])))


def today_utc() -> str:
    """Today's daily partition key (UTC)."""
    return datetime.now(UTC).strftime("%Y-%m-%d")
