"""The pipeline commands: ``run`` (everything up to date), ``forecast`` (what a selection would cost) and
``backfill`` (exactly what changed, through the daemon)."""

from __future__ import annotations

import dataclasses
import sys
import time
from typing import TYPE_CHECKING, Any

import click

from seedance_pipeline.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_REJECTED,
    emit,
    json_option,
    open_storage,
    pipeline_context,
    selection_options,
    storage_option,
)
from seedance_pipeline.ledger.states import AttemptState
from seedance_pipeline.planning.select import MODES, Mode

if TYPE_CHECKING:
    from seedance_pipeline.planning.backfill import Plan


def plan_payload(result: Plan) -> dict[str, Any]:
    """A plan as JSON: every clip, the totals per provider, what cannot be made."""
    # A clip's fields are flat: dataclasses.asdict's deep copy of each took 0.55 s per 10,000 clips.
    names = [f.name for f in dataclasses.fields(result.clips[0])] if result.clips else []
    return {
        "clips": [{"partition": c.partition, **{n: getattr(c, n) for n in names}} for c in result.clips],
        "by_provider": {
            provider: {
                "clips": len(group),
                AttemptState.REUSED.value: sum(c.reused for c in group),
                "seconds": sum(c.seconds for c in group if not c.reused),
                "usd": round(sum(c.usd for c in group), 6),
            }
            for provider, group in result.by_provider().items()
        },
        "total_usd": round(result.total_usd, 6),
        "retakes": {"clips": len(result.retakes), "usd": round(sum(c.usd for c in result.retakes), 6)},
        "failures": list(result.failures),
        "waiting": list(result.waiting),
    }


@click.command("run")
@storage_option
@json_option
def run_command(storage_url: str | None, as_json: bool) -> None:
    """Register new images and prompts, make every missing or outdated clip, and today's cost report."""
    from seedance_pipeline.cli.progress import Progress
    from seedance_pipeline.cli.run_report import format_report
    from seedance_pipeline.cli.runner import dagster_instance, run_pipeline
    from seedance_pipeline.providers.resource import SeedanceProviders

    storage = open_storage(storage_url)
    instance = dagster_instance()
    report = run_pipeline(instance, storage, SeedanceProviders.from_env(), progress=Progress("run"))
    if as_json:
        emit(True, {**dataclasses.asdict(report), "ok": report.ok})
    else:
        click.echo(format_report(report))
    sys.exit(EXIT_OK if report.ok else EXIT_FAILED)


@click.command()
@click.option(
    "--mode",
    type=click.Choice(MODES),
    default="missing_or_stale",
    show_default=True,
    help="Which targeted clips: never made, made from outdated inputs, both, or all.",
)
@click.option(
    "--list/--no-list", "list_clips", default=True, show_default=True, help="List every clip, not only totals."
)
@selection_options
@json_option
def forecast(mode: Mode, list_clips: bool, prompts, images, storage_url, as_json: bool) -> None:
    """What producing a selection of clips would cost: clips, seconds and USD per provider (nothing is sent).

    Refreshes the sources from storage first (as the storage sensor would), so edits are counted.
    """
    from seedance_pipeline.planning.backfill import format_plan, plan

    instance, storage, providers, _ = pipeline_context(storage_url)
    result = plan(instance, storage, providers, mode=mode, prompts=list(prompts) or None, images=list(images) or None)
    if as_json:
        emit(True, plan_payload(result))
    else:
        click.echo(format_plan(result, list_clips=list_clips))


@click.command()
@click.option(
    "--changed", is_flag=True, help="Clips made from inputs that changed since (an edited prompt, a replaced image)."
)
@click.option("--missing", is_flag=True, help="Targeted clips never made.")
@click.option("--dry-run", is_flag=True, help="Print the clips and the forecast; launch nothing.")
@click.option("--max-usd", type=float, default=None, help="Refuse to launch when the forecast is over this many USD.")
@selection_options
@json_option
def backfill(
    changed: bool, missing: bool, dry_run: bool, max_usd: float | None, prompts, images, storage_url, as_json: bool
) -> None:
    """Backfill exactly the clips an edit made outdated (and/or the missing ones), with their forecast cost.

    Launches one Dagster backfill per provider (tagged seedance/provider for the run queue's limits); the
    Dagster daemon runs it (`make ui`, or `dagster-daemon run`). Unchanged clips are not touched.
    """
    from seedance_pipeline.cli.progress import Progress
    from seedance_pipeline.planning.backfill import format_plan, launch, plan

    if not (changed or missing):
        raise click.UsageError("say what to backfill: --changed, --missing, or both")
    mode: Mode = "missing_or_stale" if changed and missing else "stale" if changed else "missing"
    progress = Progress("backfill")
    instance, storage, providers, defs = pipeline_context(storage_url, progress)
    with progress.step(f"planning ({mode})"):
        result = plan(
            instance, storage, providers, mode=mode, prompts=list(prompts) or None, images=list(images) or None
        )
    payload = {**plan_payload(result), "dry_run": dry_run, "launched": []}
    if not result.clips:
        emit(as_json, payload)
        if not as_json:
            click.echo(
                "nothing to backfill: every targeted clip is up to date"
                + (f" ({len(result.failures)} cannot be made, see above)" if result.failures else "")
            )
            for failure in result.failures:
                click.echo(f"cannot be made: {failure}")
        sys.exit(EXIT_OK if not result.failures else EXIT_FAILED)
    if not as_json:
        click.echo(format_plan(result))
    if dry_run:
        emit(as_json, payload)
        if not as_json:
            click.echo("dry run: nothing launched")
        return
    if max_usd is not None and result.total_usd > max_usd + 1e-9:
        click.echo(
            f"error: the forecast ${result.total_usd:.4f} is over --max-usd ${max_usd:.2f}; nothing launched", err=True
        )
        emit(as_json, payload)
        sys.exit(EXIT_REJECTED)
    for provider, backfill_id, n in launch(instance, defs, result):
        payload["launched"].append({"provider": provider, "backfill_id": backfill_id, "clips": n})
        if not as_json:
            click.echo(
                f"launched backfill {backfill_id}: {n} clip(s) on {provider} (Dagster UI: /runs/b/{backfill_id})"
            )
    emit(as_json, payload)
    if not _daemon_running(instance):
        click.echo(
            "note: no Dagster daemon is running on this instance; the backfill waits until one is "
            "(`make ui`, or `dagster-daemon run -w workspace.yaml`)",
            err=True,
        )


def _daemon_running(instance) -> bool:
    beats = instance.get_daemon_heartbeats()
    beat = beats.get("BACKFILL")
    return beat is not None and time.time() - beat.timestamp < 120
