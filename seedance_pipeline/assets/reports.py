"""``cost_report``: every attempt of one UTC day, from the write-ahead task records."""

import io

import dagster as dg
import pandas as pd

from seedance_pipeline.partitions import daily_partitions
from seedance_pipeline.storage.resource import SeedanceStorage
from seedance_pipeline.tasks import TaskStore

COLUMNS = [
    "attempt_id",
    "provider",
    "prompt",
    "image",
    "resolution",
    "seconds",
    "audio",
    "tier",
    "simulated",
    "outcome",
    "estimated_usd",
    "reported_usd",
    "charged_usd",
    "saved_usd",
    "task_id",
    "error",
]
# What a provider bills: delivered clips only; failed generations are free on every provider that
# documents it (RunPod §1.6, Ark §6.5) and assumed free elsewhere.
BILLED = {"succeeded", "download_failed"}


def attempts_frame(store: TaskStore, day: str) -> pd.DataFrame:
    rows = []
    for r in store.day_records(day):
        req = r.request
        billed = r.state in BILLED
        charged = (r.reported_cost_usd if r.reported_cost_usd is not None else r.estimated_cost_usd) if billed else 0.0
        rows.append(
            {
                "attempt_id": r.attempt_id,
                "provider": r.provider,
                "prompt": r.prompt,
                "image": r.image,
                "resolution": req.get("resolution"),
                "seconds": req.get("duration"),
                "audio": req.get("generate_audio"),
                "tier": req.get("service_tier") or "default",
                "simulated": r.simulated,
                "outcome": r.state,
                "estimated_usd": r.estimated_cost_usd if r.state != "reused" else 0.0,
                "reported_usd": r.reported_cost_usd if r.state != "reused" else None,
                "charged_usd": charged,
                "saved_usd": r.estimated_cost_usd if r.state == "reused" else 0.0,
                "task_id": r.task_id,
                "error": r.error,
            }
        )
    return pd.DataFrame(rows, columns=COLUMNS)


def _bars(series: pd.Series, width: int = 24) -> str:
    top = float(series.max()) if len(series) and series.max() > 0 else 1.0
    return "\n".join(
        f"    {name:<14} {'█' * max(1, round(width * float(v) / top)) if v > 0 else '·'} ${v:,.4f}"
        for name, v in series.items()
    )


def spent_on_failures(df: pd.DataFrame) -> float:
    """Charged for attempts that delivered no stored clip (download_failed: delivered, billed, not stored yet)."""
    return float(df.loc[~df["outcome"].isin(["succeeded", "reused"]), "charged_usd"].sum())


def per_prompt(df: pd.DataFrame) -> pd.DataFrame:
    """Attempts, clips stored, charged, spent on failures and saved by reuse, per prompt."""
    g = df.assign(
        stored=df["outcome"].isin(["succeeded", "reused"]),
        failure_usd=df["charged_usd"].where(~df["outcome"].isin(["succeeded", "reused"]), 0.0),
    )
    table = (
        g.groupby("prompt")
        .agg(
            attempts=("attempt_id", "count"),
            clips_stored=("stored", "sum"),
            charged_usd=("charged_usd", "sum"),
            on_failures_usd=("failure_usd", "sum"),
            saved_by_reuse_usd=("saved_usd", "sum"),
        )
        .reset_index()
    )
    return table.round(4)


def summary_markdown(day: str, df: pd.DataFrame) -> str:
    if df.empty:
        return f"# Cost report {day}\n\nNo attempts on this day."
    by_provider = df.groupby("provider")["charged_usd"].sum().sort_values(ascending=False)
    by_prompt = df.groupby("prompt")["charged_usd"].sum().sort_values(ascending=False)
    outcomes = df["outcome"].value_counts()
    failed_spend = spent_on_failures(df)
    lines = [
        f"# Cost report {day}",
        "",
        f"**{len(df)} attempts**, charged **${df['charged_usd'].sum():,.4f}** "
        f"(estimated ${df['estimated_usd'].sum():,.4f}; provider-reported ${df['reported_usd'].fillna(0).sum():,.4f} "
        f"where reported), saved by reuse **${df['saved_usd'].sum():,.4f}**, spent on failures ${failed_spend:,.4f}.",
        "",
        "Outcomes: " + ", ".join(f"{k} {v}" for k, v in outcomes.items()),
        "",
        "## Charged per provider",
        "",
        _bars(by_provider),
        "",
        "## Charged per prompt",
        "",
        _bars(by_prompt),
        "",
        "## Per prompt",
        "",
        per_prompt(df).to_markdown(index=False),
    ]
    blocked = int((df["outcome"] == "blocked").sum())
    if blocked:
        lines += ["", f"{blocked} attempt(s) were stopped by a budget before anything was sent."]
    if df["simulated"].any():
        lines += [
            "",
            f"_{int(df['simulated'].sum())} attempt(s) went to the built-in simulator: simulated, not billed._",
        ]
    return "\n".join(lines)


@dg.asset(
    partitions_def=daily_partitions,
    group_name="reports",
    owners=["team:creative-ops"],
    kinds={"pandas", "parquet"},
    deps=[dg.AssetDep("clips", partition_mapping=dg.AllPartitionMapping())],
    description="Every provider attempt of one UTC day (provider, prompt, image, resolution, seconds, audio, tier, "
    "estimated and provider-reported USD, outcome), as Parquet under reports/<day>/ with a Markdown summary.",
)
def cost_report(context: dg.AssetExecutionContext, storage: SeedanceStorage) -> dg.MaterializeResult:
    day = context.partition_key
    df = attempts_frame(TaskStore(storage), day)
    summary = summary_markdown(day, df)
    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    parquet_path = storage.path("reports", day, "cost_report.parquet")
    storage.write_bytes(parquet_path, buf.getvalue())
    storage.write_bytes(storage.path("reports", day, "cost_report.md"), summary.encode())
    preview = df[
        [
            "provider",
            "prompt",
            "image",
            "resolution",
            "seconds",
            "audio",
            "outcome",
            "estimated_usd",
            "reported_usd",
            "charged_usd",
        ]
    ].head(50)
    return dg.MaterializeResult(
        metadata={
            "attempts": len(df),
            "charged_usd": dg.MetadataValue.float(float(df["charged_usd"].sum())),
            "estimated_usd": dg.MetadataValue.float(float(df["estimated_usd"].sum())),
            "saved_by_reuse_usd": dg.MetadataValue.float(float(df["saved_usd"].sum())),
            "spent_on_failures_usd": dg.MetadataValue.float(spent_on_failures(df)),
            "blocked_by_budget": int((df["outcome"] == "blocked").sum()),
            "per_prompt": dg.MetadataValue.md(per_prompt(df).to_markdown(index=False) if not df.empty else "(none)"),
            "path": dg.MetadataValue.path(storage.ref(parquet_path)),
            "summary": dg.MetadataValue.md(summary),
            "attempts_preview": dg.MetadataValue.md(
                preview.to_markdown(index=False) if not preview.empty else "(none)"
            ),
        }
    )
