"""``cost_report``: every attempt of one UTC day, from the write-ahead task records."""

import io
from typing import TYPE_CHECKING

import dagster as dg

from seedance_pipeline.ledger.report import (
    LEDGER_DIGEST,
    PREVIEW_COLUMNS,
    attempts_frame,
    blocked_by_budget,
    estimate_drift,
    per_prompt,
    per_provider,
    spent_on_failures,
    spent_on_rejected,
    summary_markdown,
)
from seedance_pipeline.ledger.store import TaskStore
from seedance_pipeline.lineage.names import CLIPS_KEY, OWNERS, REPORTS_GROUP
from seedance_pipeline.lineage.partitions import daily_partitions
from seedance_pipeline.review.store import ReviewStore
from seedance_pipeline.storage import layout
from seedance_pipeline.storage.resource import SeedanceStorage

REVIEWS_DIGEST = "reviews_digest"  # the review files the report's rejected-take figures were read from

if TYPE_CHECKING:
    import pandas as pd


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
    rejected, reviews_digest = ReviewStore(storage).rejected()
    df = attempts_frame(store, day, rejected)
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
            "spent_on_rejected_takes_usd": dg.MetadataValue.float(spent_on_rejected(df)),
            "blocked_by_budget": blocked_by_budget(df),
            "dagster/row_count": len(df),
            "per_provider": table(per_provider(df)),
            "per_prompt": table(per_prompt(df)),
            "estimate_drift": dg.MetadataValue.md(
                drift.to_markdown(index=False) if not drift.empty else "(none reported)"
            ),
            "path": dg.MetadataValue.path(storage.ref(parquet_path)),
            LEDGER_DIGEST: digest,
            REVIEWS_DIGEST: reviews_digest,
            "summary": dg.MetadataValue.md(summary),
            "attempts_preview": dg.MetadataValue.md(
                preview.to_markdown(index=False) if not preview.empty else "(none)"
            ),
        }
    )


_TYPES = {"i": "int", "u": "int", "f": "float", "b": "bool"}


def table(frame: "pd.DataFrame") -> dg.TableMetadataValue:
    """A frame as Dagster's table metadata, with its schema (the UI shows it sortable, typed)."""
    import pandas as pd  # only when a report is built: loading the definitions stays free of pandas

    schema = dg.TableSchema(
        columns=[dg.TableColumn(str(c), _TYPES.get(frame[c].dtype.kind, "string")) for c in frame.columns]
    )
    records = [
        dg.TableRecord(
            {str(k): (None if pd.isna(v) else v.item() if hasattr(v, "item") else v) for k, v in row.items()}
        )
        for row in frame.to_dict("records")
    ]
    return dg.MetadataValue.table(records, schema)
