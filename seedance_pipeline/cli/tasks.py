"""``seedance-pipeline tasks``: the provider attempts that need attention: list, retry, abandon."""

from __future__ import annotations

import sys
import time

import click

from seedance_pipeline.cli.common import EXIT_FAILED, EXIT_OK, open_storage, storage_option
from seedance_pipeline.ledger import states
from seedance_pipeline.ledger.records import AttemptRecord
from seedance_pipeline.ledger.states import AttemptState
from seedance_pipeline.ledger.store import TaskStore
from seedance_pipeline.lineage.names import CLIPS_JOB


@click.group()
def tasks() -> None:
    """Provider attempts that need a decision: list them, retry them, or abandon them."""


def _task_store(storage_url: str | None) -> TaskStore:
    return TaskStore(open_storage(storage_url))


@tasks.command("list")
@storage_option
def tasks_list(storage_url: str | None) -> None:
    """Open attempts: in flight, orphaned, or with acceptance unknown."""
    records = _task_store(storage_url).open_records()
    if not records:
        click.echo("no open attempts")
        return
    click.echo(f"{'attempt':<30} {'clip':<28} {'provider':<10} {'state':<16} {'age':>7} {'est $':>8}  task id")
    for r in records:
        age = f"{time.time() - r.created_at:.0f}s"
        click.echo(
            f"{r.attempt_id:<30} {r.image + '|' + r.prompt:<28} {r.provider:<10} {r.state:<16} {age:>7} "
            f"{r.estimated_cost_usd:>8.4f}  {r.task_id or '-'}"
        )
    unknown = [r for r in records if r.state in states.NEEDS_DECISION]
    if unknown:
        click.echo(
            f"\n{len(unknown)} attempt(s) may or may not have been accepted (and billed) by the provider; "
            "they are never resubmitted automatically. `seedance-pipeline tasks retry ATTEMPT` submits again, "
            "`seedance-pipeline tasks abandon ATTEMPT` stops tracking."
        )


def _close(store: TaskStore, attempt_id: str, note: str) -> AttemptRecord:
    try:
        record = store.load(attempt_id)
    except FileNotFoundError:
        raise click.ClickException(f"no attempt {attempt_id}") from None
    if record.state not in states.OPEN:
        raise click.ClickException(f"attempt {attempt_id} is {record.state}; only open attempts can be closed")
    if record.state in states.COLLECTABLE:
        raise click.ClickException(
            f"attempt {attempt_id} was accepted as task {record.task_id}: its output is collected by the pending-tasks "
            "sensor or the next `seedance-pipeline run`, never resubmitted"
        )
    store.save(record.moved(AttemptState.ABANDONED, error=f"{record.error or ''} [{note}]".strip()))
    return record


@tasks.command("abandon")
@click.argument("attempt_id")
@storage_option
def tasks_abandon(attempt_id: str, storage_url: str | None) -> None:
    """Stop tracking an attempt whose acceptance is unknown (the next run makes the clip anew)."""
    record = _close(_task_store(storage_url), attempt_id, "abandoned by the user")
    click.echo(
        f"abandoned {attempt_id} ({record.image}|{record.prompt} on {record.provider}). If the provider did accept "
        f"it, it may already be billed: about ${record.estimated_cost_usd:.4f}. The next `seedance-pipeline run` "
        "makes this clip again, at about the same cost."
    )


@tasks.command("retry")
@click.argument("attempt_id")
@storage_option
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def tasks_retry(attempt_id: str, storage_url: str | None, yes: bool) -> None:
    """Submit again an attempt whose acceptance is unknown: says what it costs, then runs that one clip."""
    store = _task_store(storage_url)
    record = store.load(attempt_id)
    click.echo(
        f"retrying {record.image}|{record.prompt} on {record.provider} costs about ${record.estimated_cost_usd:.4f} "
        "more (and the first attempt may have been billed too)."
    )
    if not yes and not click.confirm("Submit again?", default=False):
        raise click.Abort()
    _close(store, attempt_id, "superseded by a retry")
    from seedance_pipeline.cli.runner import dagster_instance
    from seedance_pipeline.definitions import build_definitions
    from seedance_pipeline.lineage.partitions import clip_key
    from seedance_pipeline.providers.resource import SeedanceProviders

    defs = build_definitions(store.storage, SeedanceProviders.from_env())
    result = defs.resolve_job_def(CLIPS_JOB).execute_in_process(
        instance=dagster_instance(),
        partition_key=str(clip_key(record.image, record.prompt)),
        raise_on_error=False,
        run_config={"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}},
    )
    click.echo(f"run {result.run_id}: {'stored' if result.success else 'failed (see the Dagster UI)'}")
    sys.exit(EXIT_OK if result.success else EXIT_FAILED)
