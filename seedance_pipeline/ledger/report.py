"""The cost report's tables: every attempt of one UTC day, from the write-ahead task records, as a pandas frame
and a Markdown summary. pandas is imported when a report is built, not when this module is."""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING

from seedance_pipeline.ledger import states
from seedance_pipeline.ledger.states import AttemptState as S
from seedance_pipeline.ledger.store import TaskStore

if TYPE_CHECKING:
    import pandas as pd

STORED = [s.value for s in states.STORED]
LEDGER_DIGEST = "ledger_digest"  # the report's metadata: ``TaskStore.day_digest`` of the records it was built from

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
    "rejected_in_review",
]
# The columns the cost report shows in the Dagster UI (the rest are in the Parquet file).
PREVIEW_COLUMNS = [c for c in COLUMNS if c not in ("attempt_id", "tier", "simulated", "saved_usd", "task_id", "error")]


def attempts_frame(store: TaskStore, day: str, rejected: Collection[str] = ()) -> pd.DataFrame:
    """One row per attempt of ``day`` (UTC); what it was charged follows ``states.BILLED``. ``rejected``: the
    fingerprints of the takes people rejected in review (``review/store.py``), flagged on the attempts that made
    them."""
    import pandas as pd

    rows = []
    for r in store.day_records(day):
        req = r.request
        billed = r.state in states.BILLED
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
                "outcome": r.state.value,
                "estimated_usd": r.estimated_cost_usd if r.state is not S.REUSED else 0.0,
                "reported_usd": r.reported_cost_usd if r.state is not S.REUSED else None,
                "charged_usd": charged,
                "saved_usd": r.estimated_cost_usd if r.state is S.REUSED else 0.0,
                "task_id": r.task_id,
                "error": r.error,
                "rejected_in_review": r.state in states.STORED and r.fingerprint in rejected,
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
    return float(df.loc[~df["outcome"].isin(STORED), "charged_usd"].sum())


def spent_on_rejected(df: pd.DataFrame) -> float:
    """Charged for takes a person has rejected since (kept as versions; their retakes are charged on their own)."""
    return float(df.loc[df["rejected_in_review"].astype(bool), "charged_usd"].sum())


def per_prompt(df: pd.DataFrame) -> pd.DataFrame:
    """Attempts, clips stored, charged, spent on failures, on rejected takes, and saved by reuse, per prompt."""
    return _per(df, "prompt")


def per_provider(df: pd.DataFrame) -> pd.DataFrame:
    """``per_prompt``, per provider."""
    return _per(df, "provider")


def _per(df: pd.DataFrame, key: str) -> pd.DataFrame:
    g = df.assign(
        stored=df["outcome"].isin(STORED),
        failure_usd=df["charged_usd"].where(~df["outcome"].isin(STORED), 0.0),
        rejected_usd=df["charged_usd"].where(df["rejected_in_review"].astype(bool), 0.0),
    )
    table = (
        g.groupby(key)
        .agg(
            attempts=("attempt_id", "count"),
            clips_stored=("stored", "sum"),
            charged_usd=("charged_usd", "sum"),
            on_failures_usd=("failure_usd", "sum"),
            on_rejected_usd=("rejected_usd", "sum"),
            saved_by_reuse_usd=("saved_usd", "sum"),
        )
        .reset_index()
    )
    return table.round(4)


def estimate_drift(df: pd.DataFrame) -> pd.DataFrame:
    """Per provider, over the attempts whose charge the provider reported: our estimate against its figure (the
    charge is always the reported one where there is one), and the drift, (reported - estimated) / estimated."""
    import pandas as pd

    reported = df[df["reported_usd"].notna() & (df["outcome"] != S.REUSED.value)]
    columns = ["provider", "attempts_reported", "estimated_usd", "reported_usd", "drift_pct"]
    if reported.empty:
        return pd.DataFrame(columns=columns)
    table = (
        reported.groupby("provider")
        .agg(
            attempts_reported=("attempt_id", "count"),
            estimated_usd=("estimated_usd", "sum"),
            reported_usd=("reported_usd", "sum"),
        )
        .reset_index()
    )
    table["drift_pct"] = (100 * (table["reported_usd"] - table["estimated_usd"]) / table["estimated_usd"]).where(
        table["estimated_usd"] > 0
    )
    return table[columns].round(4)


def blocked_by_budget(df: pd.DataFrame) -> int:
    """Attempts a budget stopped before anything was sent."""
    return int((df["outcome"] == S.BLOCKED.value).sum())


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
        f"where reported), saved by reuse **${df['saved_usd'].sum():,.4f}**, spent on failures ${failed_spend:,.4f}, "
        f"on takes rejected in review ${spent_on_rejected(df):,.4f}.",
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
        "",
        "## Per provider",
        "",
        per_provider(df).to_markdown(index=False),
        "",
        "## Estimate against what the provider reported",
        "",
        _drift_markdown(df),
    ]
    blocked = blocked_by_budget(df)
    if blocked:
        lines += ["", f"{blocked} attempt(s) were stopped by a budget before anything was sent."]
    lost = df[df["outcome"] == S.LOST.value]
    if len(lost):
        lines += [
            "",
            f"{len(lost)} attempt(s) were lost: the provider accepted them and no longer knows them, so they are "
            f"counted as charged (${lost['charged_usd'].sum():,.4f}) with no clip stored.",
        ]
    if df["simulated"].any():
        lines += [
            "",
            f"_{int(df['simulated'].sum())} attempt(s) went to the built-in simulator: simulated, not billed._",
        ]
    return "\n".join(lines)


def _drift_markdown(df: pd.DataFrame) -> str:
    drift = estimate_drift(df)
    if drift.empty:
        return "No provider reported a charge for these attempts: every charge above is our estimate."
    return drift.to_markdown(index=False)
