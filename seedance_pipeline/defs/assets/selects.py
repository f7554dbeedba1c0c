"""``selects``: the approved take of each clip partition, copied to ``selects/<prompt>/<image>.mp4``, and one
manifest per prompt (``review/selects.py``). Materialized by ``review approve|reject`` for the pair decided on,
and by ``run`` for every pair whose reviews changed otherwise (a file edited by hand or by another tool)."""

import dagster as dg

from seedance_pipeline.lineage import versions
from seedance_pipeline.lineage.names import CLIPS_KEY, OWNERS, REVIEW_GROUP, SELECTS_KEY
from seedance_pipeline.lineage.partitions import clip_key, clip_partition, clip_partitions, split_key
from seedance_pipeline.review.selects import place, write_manifest
from seedance_pipeline.storage.resource import SeedanceStorage

SELECTS_CODE_VERSION = "1"


class SelectsConfig(dg.Config):
    # True: a partition whose select was already in step yields no materialization (``run`` refreshes a
    # rectangle of partitions around the pairs that changed).
    only_changed: bool = False


@dg.asset(
    key=SELECTS_KEY,
    partitions_def=clip_partitions,
    deps=[CLIPS_KEY],
    output_required=False,
    code_version=SELECTS_CODE_VERSION,
    group_name=REVIEW_GROUP,
    owners=OWNERS,
    kinds={"video", "csv"},
    description="The approved take of each (image, prompt), at selects/<prompt>/<image>.mp4, with "
    "selects/<prompt>/manifest.csv per prompt. Approving pays for nothing: the take is copied within storage.",
)
def selects(context: dg.AssetExecutionContext, config: SelectsConfig, storage: SeedanceStorage):
    pairs = [split_key(k) for k in context.partition_keys]
    clip_versions = versions.latest_versions(context.instance, CLIPS_KEY, [clip_partition(i, p) for i, p in pairs])
    placed = [place(storage, image, prompt) for image, prompt in pairs]
    manifests = {prompt: write_manifest(storage, prompt) for prompt in sorted({p.prompt for p in placed})}
    for select in placed:
        if config.only_changed and not select.changed:
            continue
        path, rows = manifests[select.prompt]
        metadata = {"manifest": storage.ref(path), "manifest_rows": rows}
        if select.row is None:
            metadata["selected"] = "none: no approved take"
        else:
            metadata.update({k: v for k, v in select.row.items() if v is not None})
            metadata["path"] = storage.ref(storage.path(select.row["path"]))
        clip = clip_versions.get(clip_partition(select.image, select.prompt))
        context.log.info(
            f"{select.image}|{select.prompt}: "
            + (f"take {select.row['take']} selected" if select.row else "no approved take")
            + ("" if select.changed else " (unchanged)")
        )
        yield versions.materialization(
            SELECTS_KEY,
            clip_key(select.image, select.prompt),
            data_version=select.row["fingerprint"] if select.row else "none",
            code_version=SELECTS_CODE_VERSION,
            inputs={CLIPS_KEY: clip} if clip else None,
            metadata=metadata,
        )
