"""``source_images`` and ``prompts``: Dagster's record of what is in storage, one partition per file."""

import dagster as dg

from seedance_pipeline.lineage import versions
from seedance_pipeline.lineage.names import (
    IMAGES_KEY,
    OWNERS,
    PROMPTS_KEY,
    PROMPTS_STAMPS,
    SOURCES_CODE_VERSION,
    SOURCES_GROUP,
)
from seedance_pipeline.lineage.partitions import image_partitions, prompt_partitions
from seedance_pipeline.planning.prompt_spec import PromptError, parse_prompt
from seedance_pipeline.planning.registration import ImageRegistration
from seedance_pipeline.planning.specs import load_specs
from seedance_pipeline.storage.resource import SeedanceStorage


class RefreshConfig(dg.Config):
    only_changed: bool = False  # skip partitions whose file is unchanged since the last materialization


def _unchanged(
    context, storage: SeedanceStorage, asset_key: dg.AssetKey, keys: list[str], stamps: dict[str, str], enabled: bool
) -> set[str]:
    """Keys whose file has the stamp it had when this instance last materialized it."""
    if not enabled:
        return set()
    recorded = storage.read_stamps(asset_key.path[-1])
    materialized = versions.latest_versions(context.instance, asset_key, keys)
    return {k for k in keys if k in stamps and recorded.get(k) == stamps[k] and k in materialized}


def _fail_if(failures: list[str], what: str) -> None:
    if failures:
        raise dg.Failure(
            description=f"{len(failures)} {what} could not be read; every other partition was recorded:\n"
            + "\n".join(f"- {f}" for f in failures),
            allow_retries=False,
        )


@dg.asset(
    partitions_def=image_partitions,
    output_required=False,
    group_name=SOURCES_GROUP,
    owners=OWNERS,
    kinds={"image"},
    code_version=SOURCES_CODE_VERSION,
    description="Source still images, one partition per file under images/ (key = file name stem). "
    "Data version = sha256 of the bytes, so a replaced image marks exactly its clips outdated.",
)
def source_images(context: dg.AssetExecutionContext, config: RefreshConfig, storage: SeedanceStorage):
    files = {f.key: f for f in storage.scan_images()[0]}
    keys = list(context.partition_keys)
    skip = _unchanged(context, storage, IMAGES_KEY, keys, {k: f.stamp for k, f in files.items()}, config.only_changed)
    todo = []
    for key in keys:
        stored = files.get(key)
        if stored is None:
            # Gone since the run was planned: the next refresh retires the partition (planning/refresh.py).
            context.log.warning(f"{key}: no file images/{key}.* in {storage.url} any more; left as it was")
        elif key not in skip:
            todo.append(stored)
    registration = ImageRegistration(storage)
    yield from registration.materializations(todo)
    registration.record()
    _fail_if(registration.failures, "images")


@dg.asset(
    partitions_def=prompt_partitions,
    output_required=False,
    group_name=SOURCES_GROUP,
    owners=OWNERS,
    kinds={"yaml"},
    code_version=SOURCES_CODE_VERSION,
    description="Prompt specs, one partition per prompts/<key>.yaml, validated on load (unknown keys are "
    "errors). Data version = hash of the normalised request fields: editing the text or a "
    "generation parameter marks exactly this prompt's clips outdated; comments change nothing, and "
    "a change of image globs is recorded (new targets) without outdating any clip.",
)
def prompts(context: dg.AssetExecutionContext, config: RefreshConfig, storage: SeedanceStorage):
    files = {f.key: f for f in storage.scan_prompts()[0]}
    keys = list(context.partition_keys)
    recorded = load_specs(context.instance, set(keys)) if config.only_changed else {}
    failures, seen = [], {}
    for key in keys:
        stored = files.get(key)
        if stored is None:
            context.log.warning(f"{key}: no file prompts/{key}.yaml in {storage.url} any more; left as it was")
            continue
        name = stored.path.rsplit("/", 1)[-1]
        try:
            spec = parse_prompt(f"prompts/{name}", storage.read_bytes(stored.path))
        except PromptError as exc:
            context.log.error(str(exc))
            failures.append(str(exc))
            continue
        seen[key] = stored.stamp
        if recorded.get(key) == spec:
            continue  # same spec as recorded (e.g. only a comment changed): nothing to record
        yield versions.materialization(
            PROMPTS_KEY,
            key,
            data_version=spec.data_version,
            code_version=SOURCES_CODE_VERSION,
            metadata={
                "path": dg.MetadataValue.path(storage.ref(stored.path)),
                "stamp": stored.stamp,
                "text": spec.text,
                "provider": spec.provider,
                "images": ", ".join(spec.images),
                "duration_s": spec.duration,
                "resolution": spec.resolution,
                "aspect_ratio": spec.aspect_ratio,
                "generate_audio": spec.generate_audio,
                "seed": spec.seed,
                "spec": dg.MetadataValue.json(spec.model_dump(mode="json")),
            },
        )
    storage.update_stamps(PROMPTS_STAMPS, seen)
    _fail_if(failures, "prompt files")
