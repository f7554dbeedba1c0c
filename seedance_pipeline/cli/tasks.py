"""``seedance-pipeline tasks``: the provider attempts that need attention: list, retry, adopt, abandon."""

from __future__ import annotations

import asyncio
import sys
import time
from datetime import UTC, datetime, timedelta

import click

from seedance_pipeline.cli.common import EXIT_FAILED, EXIT_OK, emit, json_option, open_storage, storage_option
from seedance_pipeline.ledger import states
from seedance_pipeline.ledger.records import AttemptRecord
from seedance_pipeline.ledger.states import AttemptState
from seedance_pipeline.ledger.store import TaskStore
from seedance_pipeline.lineage.names import CLIPS_JOB


@click.group()
def tasks() -> None:
    """Provider attempts that need a decision: list them, retry them, adopt their task, or abandon them."""


def _task_store(storage_url: str | None) -> TaskStore:
    return TaskStore(open_storage(storage_url))


@tasks.command("list")
@storage_option
@click.option("--days", type=int, default=7, show_default=True, help="Also list attempts lost in the last DAYS.")
@json_option
def tasks_list(storage_url: str | None, days: int, as_json: bool) -> None:
    """Open attempts (in flight, orphaned, acceptance unknown), and attempts the providers lost recently."""
    store = _task_store(storage_url)
    records = store.confirmed(store.open_records())
    today = datetime.now(UTC).date()
    lost = [
        r
        for n in range(days)
        for r in store.day_records(f"{today - timedelta(days=n):%Y-%m-%d}")
        if r.state is AttemptState.LOST
    ]
    if as_json:
        emit(
            True,
            {
                "open": [r.model_dump(mode="json") for r in records],
                AttemptState.LOST.value: [r.model_dump(mode="json") for r in lost],
            },
        )
        return
    if not records and not lost:
        click.echo("no open attempts" + (f" and none lost in the last {days} days" if days else ""))
        return
    if records:
        _table(records)
    else:
        click.echo("no open attempts")
    unknown = [r for r in records if r.state in states.NEEDS_DECISION]
    if unknown:
        click.echo(
            f"\n{len(unknown)} attempt(s) may or may not have been accepted (and billed) by the provider; "
            "they are never resubmitted automatically. Check the provider's dashboard: "
            "`seedance-pipeline tasks adopt ATTEMPT TASK_ID` when it shows the task (it is collected, nothing is paid "
            "again), `seedance-pipeline tasks abandon ATTEMPT` when it does not (the next run makes the clip), "
            "`seedance-pipeline tasks retry ATTEMPT` to submit again now."
        )
    if lost:
        click.echo(
            f"\n{len(lost)} attempt(s) lost in the last {days} days (the provider accepted them and no longer "
            "knows them: counted as charged, no clip; the next run makes each clip again as a new attempt):"
        )
        _table(lost)


def _table(records: list[AttemptRecord]) -> None:
    click.echo(f"{'attempt':<30} {'clip':<28} {'provider':<10} {'state':<16} {'age':>7} {'est $':>8}  task id")
    for r in records:
        age = f"{time.time() - r.created_at:.0f}s"
        click.echo(
            f"{r.attempt_id:<30} {r.image + '|' + r.prompt:<28} {r.provider:<10} {r.state:<16} {age:>7} "
            f"{r.estimated_cost_usd:>8.4f}  {r.task_id or '-'}"
        )


def _load_open(store: TaskStore, attempt_id: str) -> AttemptRecord:
    try:
        record = store.load(attempt_id)
    except FileNotFoundError:
        raise click.ClickException(f"no attempt {attempt_id}") from None
    if record.state not in states.OPEN:
        raise click.ClickException(f"attempt {attempt_id} is {record.state}; only open attempts can be closed")
    return record


def _close(store: TaskStore, attempt_id: str, note: str) -> AttemptRecord:
    record = _load_open(store, attempt_id)
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
    """Stop an attempt: one whose acceptance is unknown is closed; a task the provider has is cancelled there
    first, where the provider can cancel (the next run makes the clip anew)."""
    store = _task_store(storage_url)
    record = _load_open(store, attempt_id)
    if record.state is AttemptState.ACCEPTED and record.task_id:
        _cancel(store, record)
        return
    record = _close(store, attempt_id, "abandoned by the user")
    click.echo(
        f"abandoned {attempt_id} ({record.image}|{record.prompt} on {record.provider}). If the provider did accept "
        f"it, it may already be billed: about ${record.estimated_cost_usd:.4f}. The next `seedance-pipeline run` "
        "makes this clip again, at about the same cost."
    )


@tasks.command("adopt")
@click.argument("attempt_id")
@click.argument("task_id")
@storage_option
def tasks_adopt(attempt_id: str, task_id: str, storage_url: str | None) -> None:
    """Give an attempt whose acceptance is unknown the task id its provider shows (e.g. on its dashboard): the
    provider is asked for that task first; then the pending-tasks sensor or the next run collects it, and the
    clip is not paid for again."""
    from seedance_pipeline.ledger.liveness import owner_alive

    store = _task_store(storage_url)
    record = _load_open(store, attempt_id)
    if record.state not in states.NEEDS_DECISION:
        raise click.ClickException(f"attempt {attempt_id} is {record.state} (task {record.task_id}): it has its task")
    if record.state not in states.AWAITING_PERSON and owner_alive(record.owner):
        raise click.ClickException(f"attempt {attempt_id} is still being submitted by process {record.owner}")
    task_id = task_id.strip()
    tracked = [r.attempt_id for r in store.records_since(record.created_at - 86400) if r.task_id == task_id]
    if tracked:
        raise click.ClickException(f"task {task_id} already belongs to attempt {tracked[0]}")
    state = _provider_state(record.provider, task_id)
    store.save(
        record.moved(
            AttemptState.ACCEPTED,
            task_id=task_id,
            error=f"{record.error or ''} [task id given by the user]".strip(),
        )
    )
    click.echo(
        f"attempt {attempt_id} ({record.image}|{record.prompt}) now tracks {record.provider} task {task_id} "
        f"({state}): the pending-tasks sensor or the next `seedance-pipeline run` collects it."
    )


def _provider_state(provider: str, task_id: str) -> str:
    """The provider's state of ``task_id``; a ClickException when the provider does not know it."""
    from seedance_pipeline.core.errors import SeedanceError
    from seedance_pipeline.providers.resource import SeedanceProviders

    providers = SeedanceProviders.from_env()

    async def poll() -> str:
        async with providers.make_client(provider) as client:
            return (await client.poll(task_id)).state.value

    try:
        return asyncio.run(poll())
    except SeedanceError as exc:
        raise click.ClickException(f"{provider} did not confirm task {task_id}: {exc}") from None
    finally:
        providers.close()


def _cancel(store: TaskStore, record: AttemptRecord) -> None:
    """Cancel a task at its provider, then close its attempt; without a cancel endpoint, say so and keep it."""
    from seedance_pipeline.providers.resource import SeedanceProviders
    from seedance_pipeline.providers.states import TaskState

    providers = SeedanceProviders.from_env()

    async def cancel() -> TaskState | None:
        async with providers.make_client(record.provider) as client:
            snap = await client.cancel(str(record.task_id))
        return None if snap is None else snap.state

    try:
        state = asyncio.run(cancel())
    finally:
        providers.close()
    where = f"{record.image}|{record.prompt} on {record.provider}, task {record.task_id}"
    if state is None:
        raise click.ClickException(
            f"{record.provider} has no cancel endpoint (docs/providers.md): {where} may still finish and be billed, so "
            "the attempt stays open and its clip is collected by the pending-tasks sensor or the next run"
        )
    if state is not TaskState.CANCELLED:
        from seedance_pipeline.providers import ADAPTER_CLASSES

        only = sorted(s.value for s in ADAPTER_CLASSES[record.provider].cancellable_states)
        raise click.ClickException(
            f"{record.provider} did not cancel {where}: it is already {state.value}, and {record.provider} cancels "
            f"only {' or '.join(only)} tasks. The attempt stays open; its clip is collected when it ends (and billed)"
        )
    store.save(record.moved(AttemptState.ABANDONED, error=f"{record.error or ''} [cancelled at the provider]".strip()))
    click.echo(f"cancelled {where} and abandoned attempt {record.attempt_id}; nothing more is billed for it.")


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
