"""``galleries``: one review contact sheet per prompt (``galleries/<prompt>.html``, ``review/gallery.py``), built
again by ``review approve|reject`` for the prompt decided on, by ``run`` for prompts with new takes (local storage)
and, like the review sensor, for prompts whose selects changed otherwise; ``seedance-pipeline gallery`` builds it on
demand without Dagster. On S3 new takes alone do not rebuild it (the page carries presigned URLs, written only when
a person asks)."""

import dagster as dg

from seedance_pipeline.defs.preview import accepting
from seedance_pipeline.lineage.names import CLIPS_KEY, GALLERIES_KEY, OWNERS, REVIEW_GROUP, SELECTS_KEY
from seedance_pipeline.lineage.partitions import prompt_partitions
from seedance_pipeline.review.gallery import build_gallery
from seedance_pipeline.storage.resource import SeedanceStorage

# MultiToSingleDimensionPartitionMapping is a Dagster beta feature (README: "Dagster features we rely on").
with accepting(dg.BetaWarning):

    @dg.asset(
        key=GALLERIES_KEY,
        partitions_def=prompt_partitions,
        deps=[
            dg.AssetDep(key, partition_mapping=dg.MultiToSingleDimensionPartitionMapping("prompt"))
            for key in (CLIPS_KEY, SELECTS_KEY)
        ],
        output_required=False,
        group_name=REVIEW_GROUP,
        owners=OWNERS,
        kinds={"html"},
        description="A review contact sheet per prompt at galleries/<prompt>.html: each pair's current take with a "
        "poster, a playable video, provider, seed, take, cost, checks, review state and the commands to decide.",
    )
    def galleries(context: dg.AssetExecutionContext, storage: SeedanceStorage):
        for prompt in context.partition_keys:
            page = build_gallery(storage, prompt)
            metadata: dict = {"takes": page.takes, "page": dg.MetadataValue.path(page.path)}
            if page.expires_at is not None:
                metadata["links_expire_at"] = dg.MetadataValue.timestamp(page.expires_at)
            context.log.info(f"{prompt}: {page.takes} take(s) at {page.path}")
            yield dg.AssetMaterialization(GALLERIES_KEY, partition=prompt, metadata=metadata)
