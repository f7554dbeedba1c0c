"""What ``seedance-pipeline run`` did, as the command prints it: the clips each run stored, what failed, what was
retired, settled or ignored, and where the cost report is."""

from __future__ import annotations

from dataclasses import dataclass, field

import dagster as dg

from seedance_pipeline.lineage.names import CLIPS_KEY


@dataclass
class ClipRow:
    clip: str
    provider: str
    outcome: str
    seconds: int | None
    cost_usd: float
    path: str
    simulated: bool


@dataclass
class RunReport:
    runs: dict[str, str] = field(default_factory=dict)  # step -> run id
    clips: list[ClipRow] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    retired: list[str] = field(default_factory=list)
    settled: list[str] = field(default_factory=list)  # attempts of unknown acceptance, looked up at the provider
    notes: list[str] = field(default_factory=list)
    cost_report: str | None = None

    @property
    def ok(self) -> bool:
        return not self.failures


def clip_rows(instance: dg.DagsterInstance, run_id: str) -> list[ClipRow]:
    rows = []
    for record in instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION).records:
        mat = record.event_log_entry.asset_materialization
        if mat is None or mat.asset_key != CLIPS_KEY:
            continue
        meta = {k: v.value for k, v in mat.metadata.items()}
        rows.append(
            ClipRow(
                clip=mat.partition or "",
                provider=str(meta.get("provider")),
                outcome=str(meta.get("outcome")),
                seconds=round(float(str(meta["duration_s"]))) if "duration_s" in meta else None,
                cost_usd=float(str(meta.get("estimated_cost_usd") or 0.0)),
                path=str(meta.get("path")),
                simulated=bool(meta.get("simulated")),
            )
        )
    return rows


def failure_lines(instance: dg.DagsterInstance, run_id: str, step: str) -> list[str]:
    lines: list[str] = []
    for record in instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.STEP_FAILURE).records:
        event = record.event_log_entry.dagster_event
        if event is None:
            continue
        data = event.step_failure_data
        user = data.user_failure_data
        text = (
            user.description if user and user.description else data.error.message if data.error else "the step failed"
        )
        lines.extend(
            f"{step}: {line[2:] if line.startswith('- ') else line}"
            for line in text.strip().splitlines()
            if line.startswith("- ") or not user
        )
    return lines or [f"{step}: run {run_id} failed (see the Dagster UI)"]


def format_report(report: RunReport) -> str:
    out = []
    if report.clips:
        header = f"{'clip':<28} {'provider':<10} {'outcome':<10} {'sec':>3} {'cost $':>8}  path"
        out += [header, "-" * len(header)]
        for r in report.clips:
            provider = r.provider + ("*" if r.simulated else "")
            seconds = "" if r.seconds is None else str(r.seconds)
            out.append(f"{r.clip:<28} {provider:<10} {r.outcome:<10} {seconds:>3} {r.cost_usd:>8.4f}  {r.path}")
        total = sum(r.cost_usd for r in report.clips)
        out.append(
            f"{len(report.clips)} clip(s), estimated ${total:.4f}"
            + (
                "  (* simulated: the built-in simulator, not a real provider; nothing billed)"
                if any(r.simulated for r in report.clips)
                else ""
            )
        )
    else:
        out.append("no clip needed producing: every targeted clip is up to date")
    for line in report.retired:
        out.append(f"retired {line}")
    out += report.settled
    for line in report.notes:
        out.append(f"note: {line}")
    for line in report.ignored:
        out.append(f"ignored {line}")
    for line in report.failures:
        out.append(f"FAILED {line}")
    if report.cost_report:
        out.append(f"cost report: {report.cost_report}")
    return "\n".join(out)
