"""``cost_report``: every attempt of one UTC day, from the write-ahead task records."""

import io

import dagster as dg

from seedance_pipeline.ledger.report import (
    LEDGER_DIGEST,
    PREVIEW_COLUMNS,
    attempts_frame,
    blocked_by_budget,
    estimate_drift,
    per_prompt,
    spent_on_failures,
    summary_markdown,
)
from seedance_pipeline.ledger.store import TaskStore
from seedance_pipeline.lineage.names import CLIPS_KEY, OWNERS, REPORTS_GROUP
from seedance_pipeline.lineage.partitions import daily_partitions
from seedance_pipeline.storage import layout
from seedance_pipeline.storage.resource import SeedanceStorage


@dg.asset(
    partitions_def=daily_partitions,
    group_name=REPORTS_GROUP,
    owners=OWNERS,
    kinds={"pandas", "parquet"},
    deps=[dg.AssetDep(CLIPS_KEY, partition_mapping=dg.AllPartitionMapping())],
    description="Every provider attempt of one UTC day (provider, prompt, image, resolution, seconds, audio, tier, "
    "estimated and provider-reported USD, outcome), as Parquet under reports/<day>/ with a Markdown summary.",
)
def cost_report(context: dg.AssetExecutionContext, storage: SeedanceStorage) -> dg.MaterializeResult:
    day = context.partition_key
    store = TaskStore(storage)
    digest = store.day_digest(day)  # before the read: a record written meanwhile makes the next run build it again
    df = attempts_frame(store, day)
    summary = summary_markdown(day, df)
    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    parquet_path = storage.path(layout.report(day, "parquet"))
    storage.write_bytes(parquet_path, buf.getvalue())
    storage.write_bytes(storage.path(layout.report(day, "md")), summary.encode())
    preview = df[PREVIEW_COLUMNS].head(50)
    drift = estimate_drift(df)
    return dg.MaterializeResult(
        metadata={
            "attempts": len(df),
            "charged_usd": dg.MetadataValue.float(float(df["charged_usd"].sum())),
            "estimated_usd": dg.MetadataValue.float(float(df["estimated_usd"].sum())),
            "saved_by_reuse_usd": dg.MetadataValue.float(float(df["saved_usd"].sum())),
            "spent_on_failures_usd": dg.MetadataValue.float(spent_on_failures(df)),
            "blocked_by_budget": blocked_by_budget(df),
            "per_prompt": dg.MetadataValue.md(per_prompt(df).to_markdown(index=False) if not df.empty else "(none)"),
            "estimate_drift": dg.MetadataValue.md(
                drift.to_markdown(index=False) if not drift.empty else "(none reported)"
            ),
            "path": dg.MetadataValue.path(storage.ref(parquet_path)),
            LEDGER_DIGEST: digest,
            "summary": dg.MetadataValue.md(summary),
            "attempts_preview": dg.MetadataValue.md(
                preview.to_markdown(index=False) if not preview.empty else "(none)"
            ),
        }
    )
