"""``seedance-pipeline``: generate one clip, run the simulator, (later) run the pipeline."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from contextlib import ExitStack
from importlib import resources
from pathlib import Path

import click
import fsspec

from seedance_pipeline.clip.generate import generate_clip
from seedance_pipeline.clip.prepare import build_request, default_presigner, prepare
from seedance_pipeline.core import settings
from seedance_pipeline.core.errors import InvalidRequest, MissingApiKey, ProviderError, SeedanceError
from seedance_pipeline.core.request import AspectRatio, Resolution
from seedance_pipeline.ledger import states
from seedance_pipeline.ledger.states import AttemptState
from seedance_pipeline.lineage.names import CLIPS_JOB
from seedance_pipeline.providers import PROVIDERS, get_adapter
from seedance_pipeline.providers.engine import ClientSettings, ProviderClient
from seedance_pipeline.providers.routing import SIMULATOR_KEY, route

EXIT_OK, EXIT_FAILED, EXIT_REJECTED = 0, 1, 2


def sample_image_path() -> str:
    return str(resources.files("seedance_pipeline").joinpath("sample_data/sample.png"))


@click.group()
def main() -> None:
    """Seedance 1.5 Pro image-to-video clips from five providers, orchestrated by Dagster."""


def _emit(as_json: bool, payload: dict) -> None:
    if as_json:
        click.echo(json.dumps(payload, sort_keys=True))


@main.command()
@click.option("--provider", type=click.Choice(PROVIDERS), required=True)
@click.option("--image", required=True, help="Local path, s3:// URL or http(s) URL of the first frame.")
@click.option("--prompt", required=True)
@click.option("--last-image", default=None, help="Optional last frame (same forms as --image).")
@click.option("--duration", type=int, default=5, show_default=True, help="Seconds, 4..12.")
@click.option("--resolution", type=click.Choice([r.value for r in Resolution]), default="720p", show_default=True)
@click.option(
    "--aspect-ratio", default="adaptive", show_default=True, help=f"One of {', '.join(r.value for r in AspectRatio)}."
)
@click.option(
    "--audio/--no-audio", default=False, show_default=True, help="Sent explicitly: providers' defaults differ."
)
@click.option("--camera-fixed", is_flag=True, default=False)
@click.option("--seed", type=int, default=-1, show_default=True, help="-1 = random.")
@click.option("--service-tier", type=click.Choice(["default", "flex"]), default=None, help="JieKou and Novita only.")
@click.option(
    "--base-url", default=None, help="Provider API root; default $SEEDANCE_<PROVIDER>_BASE_URL, else the real API."
)
@click.option(
    "--simulator", is_flag=True, default=False, help="Use the built-in simulator on loopback (no API key needed)."
)
@click.option("--out", "out", required=True, help="Where to store the MP4 (local path or fsspec URL).")
@click.option("--json", "as_json", is_flag=True, default=False, help="Print one JSON object as the last line.")
def generate(
    provider,
    image,
    prompt,
    last_image,
    duration,
    resolution,
    aspect_ratio,
    audio,
    camera_fixed,
    seed,
    service_tier,
    base_url,
    simulator,
    out,
    as_json,
) -> None:
    """Generate one clip and store it at --out.

    Exit 0: stored. Exit 2: rejected before anything was sent. Exit 1: failed after sending.
    """
    adapter = get_adapter(provider)
    summary = {
        "provider": provider,
        "task_id": None,
        "status": AttemptState.REJECTED.value,
        "output": None,
        "estimated_cost_usd": None,
        "reported_cost_usd": None,
    }
    with ExitStack() as stack:
        try:
            req = build_request(
                prompt=prompt,
                image=image,
                last_image=last_image,
                duration=duration,
                resolution=resolution,
                aspect_ratio=aspect_ratio,
                generate_audio=audio,
                camera_fixed=camera_fixed,
                seed=seed,
                service_tier=service_tier,
            )
            client_settings = ClientSettings()
            if simulator:
                from seedance_pipeline.simulator.server import SimulatorServer

                server = stack.enter_context(SimulatorServer())
                base_url, api_key = server.provider_url(provider), SIMULATOR_KEY
                latency = server.sim.config.provider(provider).latency_min_s
                client_settings = ClientSettings(expected_latency_s=latency)
            else:
                where = route(
                    provider,
                    api_key=os.environ.get(adapter.env_key),
                    base_url=base_url or settings.base_url(provider).read(),
                )
                if where.api_key is None:  # generate never falls back to the simulator, nor sends without a key
                    raise MissingApiKey(provider, adapter.env_key)
                base_url, api_key = where.base_url, where.key
            prepared = prepare(adapter, req, presign=default_presigner)
        except (InvalidRequest, MissingApiKey) as exc:
            click.echo(f"error: {exc}", err=True)
            summary["error"] = str(exc)
            _emit(as_json, summary)
            sys.exit(EXIT_REJECTED)
        for warning in prepared.warnings:
            click.echo(f"warning: {warning}", err=True)
        summary["estimated_cost_usd"] = prepared.estimate.usd
        fs, path = fsspec.core.url_to_fs(out)
        try:
            result = asyncio.run(_generate(adapter, api_key, base_url, client_settings, prepared, fs, path))
        except ProviderError as exc:
            click.echo(f"error: {exc}", err=True)
            summary.update(status=AttemptState.FAILED.value, error=str(exc), task_id=getattr(exc, "task_id", None))
            _emit(as_json, summary)
            sys.exit(EXIT_FAILED)
    click.echo(
        f"stored {out} ({result.size_bytes} bytes) from {provider} task {result.task_id}; "
        f"estimated ${result.estimated_cost_usd:.4f}"
        + (f", provider reported ${result.reported_cost_usd:.4f}" if result.reported_cost_usd is not None else ""),
        err=as_json,
    )
    summary.update(result.as_dict(), output=out, simulated=simulator)
    _emit(as_json, summary)


async def _generate(adapter, api_key, base_url, client_settings, prepared, fs, path):
    def show(snap):
        progress = f" {snap.progress:.0f}%" if snap.progress is not None else ""
        click.echo(f"  {adapter.name} task {snap.task_id}: {snap.state.value}{progress}", err=True)

    async with ProviderClient(adapter, api_key, base_url=base_url, settings=client_settings) as client:
        return await generate_clip(client, prepared, fs, path, on_update=show)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8765, show_default=True)
@click.option(
    "--config",
    "config_file",
    default=None,
    type=click.Path(exists=True, dir_okay=False),
    help="SimConfig as JSON (latency, faults, caps).",
)
def simulate(host: str, port: int, config_file: str | None) -> None:
    """Serve the five providers' APIs under http://HOST:PORT/<provider>."""
    from seedance_pipeline.simulator.config import SimConfig
    from seedance_pipeline.simulator.server import serve

    config = SimConfig.model_validate_json(Path(config_file).read_text()) if config_file else SimConfig()
    click.echo(f"simulator on http://{host}:{port}/<{'|'.join(PROVIDERS)}>", err=True)
    serve(host, port, config)


@main.command("demo-data")
@click.option(
    "--storage", "storage_url", default=None, help="Storage URL; default $SEEDANCE_STORAGE_URL or ./.seedance/storage."
)
def demo_data(storage_url: str | None) -> None:
    """Write three sample images and two prompts into storage (only files that are missing)."""
    from seedance_pipeline.demo import write_demo_data
    from seedance_pipeline.storage.resource import SeedanceStorage

    storage = SeedanceStorage.from_env() if storage_url is None else SeedanceStorage(url=storage_url)
    written = write_demo_data(storage)
    click.echo(
        f"wrote {len(written)} sample file(s) into {storage.url}" + (": " + ", ".join(written) if written else "")
    )


@main.command("run")
@click.option(
    "--storage", "storage_url", default=None, help="Storage URL; default $SEEDANCE_STORAGE_URL or ./.seedance/storage."
)
def run_command(storage_url: str | None) -> None:
    """Register new images and prompts, make every missing or outdated clip, and today's cost report."""
    from seedance_pipeline.providers.resource import SeedanceProviders
    from seedance_pipeline.runner import dagster_instance, format_report, run_pipeline
    from seedance_pipeline.storage.resource import SeedanceStorage

    storage = (
        SeedanceStorage.from_env()
        if storage_url is None
        else SeedanceStorage(url=storage_url, endpoint_url=SeedanceStorage.from_env().endpoint_url)
    )
    instance = dagster_instance()
    report = run_pipeline(instance, storage, SeedanceProviders.from_env())
    click.echo(format_report(report))
    sys.exit(EXIT_OK if report.ok else EXIT_FAILED)


def _pipeline_context(storage_url: str | None):
    """Instance, storage and providers as ``run`` uses them, with the sources refreshed from storage."""
    from seedance_pipeline.definitions import build_definitions
    from seedance_pipeline.providers.resource import SeedanceProviders
    from seedance_pipeline.runner import Executor, RunReport, dagster_instance, refresh_sources
    from seedance_pipeline.storage.resource import SeedanceStorage

    storage = (
        SeedanceStorage.from_env()
        if storage_url is None
        else SeedanceStorage(url=storage_url, endpoint_url=SeedanceStorage.from_env().endpoint_url)
    )
    providers = SeedanceProviders.from_env()
    instance = dagster_instance()
    defs = build_definitions(storage, providers)
    report = RunReport()
    refresh_sources(instance, storage, Executor(instance, defs, report, "CRITICAL"))
    for line in report.ignored:
        click.echo(f"ignored {line}", err=True)
    for line in report.failures:
        click.echo(f"FAILED {line}", err=True)
    return instance, storage, providers, defs


_SELECTION_OPTIONS = [
    click.option("--prompt", "prompts", multiple=True, help="Only these prompt keys (repeatable)."),
    click.option("--image", "images", multiple=True, help="Only these image keys (repeatable)."),
    click.option("--storage", "storage_url", default=None, help="Storage URL; default $SEEDANCE_STORAGE_URL."),
]


def _selection_options(fn):
    for option in reversed(_SELECTION_OPTIONS):
        fn = option(fn)
    return fn


@main.command()
@click.option(
    "--mode",
    type=click.Choice(["missing_or_stale", "missing", "stale", "all"]),
    default="missing_or_stale",
    show_default=True,
    help="Which targeted clips: never made, made from outdated inputs, both, or all.",
)
@click.option(
    "--list/--no-list", "list_clips", default=True, show_default=True, help="List every clip, not only totals."
)
@_selection_options
def forecast(mode: str, list_clips: bool, prompts, images, storage_url) -> None:
    """What producing a selection of clips would cost: clips, seconds and USD per provider (nothing is sent).

    Refreshes the sources from storage first (as the storage sensor would), so edits are counted.
    """
    from seedance_pipeline.planning.backfill import format_plan, plan

    instance, storage, providers, _ = _pipeline_context(storage_url)
    result = plan(instance, storage, providers, mode=mode, prompts=list(prompts) or None, images=list(images) or None)
    click.echo(format_plan(result, list_clips=list_clips))


@main.command()
@click.option(
    "--changed", is_flag=True, help="Clips made from inputs that changed since (an edited prompt, a replaced image)."
)
@click.option("--missing", is_flag=True, help="Targeted clips never made.")
@click.option("--dry-run", is_flag=True, help="Print the clips and the forecast; launch nothing.")
@click.option("--max-usd", type=float, default=None, help="Refuse to launch when the forecast is over this many USD.")
@_selection_options
def backfill(changed: bool, missing: bool, dry_run: bool, max_usd: float | None, prompts, images, storage_url) -> None:
    """Backfill exactly the clips an edit made outdated (and/or the missing ones), with their forecast cost.

    Launches one Dagster backfill per provider (tagged seedance/provider for the run queue's limits); the
    Dagster daemon runs it (`make ui`, or `dagster-daemon run`). Unchanged clips are not touched.
    """
    from seedance_pipeline.planning.backfill import format_plan, launch, plan

    if not (changed or missing):
        raise click.UsageError("say what to backfill: --changed, --missing, or both")
    mode = "missing_or_stale" if changed and missing else "stale" if changed else "missing"
    instance, storage, providers, defs = _pipeline_context(storage_url)
    result = plan(instance, storage, providers, mode=mode, prompts=list(prompts) or None, images=list(images) or None)
    if not result.clips:
        click.echo(
            "nothing to backfill: every targeted clip is up to date"
            + (f" ({len(result.failures)} cannot be made, see above)" if result.failures else "")
        )
        for failure in result.failures:
            click.echo(f"cannot be made: {failure}")
        sys.exit(EXIT_OK if not result.failures else EXIT_FAILED)
    click.echo(format_plan(result))
    if dry_run:
        click.echo("dry run: nothing launched")
        return
    if max_usd is not None and result.total_usd > max_usd + 1e-9:
        click.echo(
            f"error: the forecast ${result.total_usd:.4f} is over --max-usd ${max_usd:.2f}; nothing launched", err=True
        )
        sys.exit(EXIT_REJECTED)
    for provider, backfill_id, n in launch(instance, defs, result):
        click.echo(f"launched backfill {backfill_id}: {n} clip(s) on {provider} (Dagster UI: /runs/b/{backfill_id})")
    if not _daemon_running(instance):
        click.echo(
            "note: no Dagster daemon is running on this instance; the backfill waits until one is "
            "(`make ui`, or `dagster-daemon run -w workspace.yaml`)",
            err=True,
        )


def _daemon_running(instance) -> bool:
    import time as _time

    beats = instance.get_daemon_heartbeats()
    beat = beats.get("BACKFILL")
    return beat is not None and _time.time() - beat.timestamp < 120


@main.group()
def tasks() -> None:
    """Provider attempts that need a decision: list them, retry them, or abandon them."""


def _task_store(storage_url: str | None):
    from seedance_pipeline.ledger.store import TaskStore
    from seedance_pipeline.storage.resource import SeedanceStorage

    storage = SeedanceStorage.from_env() if storage_url is None else SeedanceStorage(url=storage_url)
    return TaskStore(storage)


@tasks.command("list")
@click.option("--storage", "storage_url", default=None)
def tasks_list(storage_url: str | None) -> None:
    """Open attempts: in flight, orphaned, or with acceptance unknown."""
    import time

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


def _close(store, attempt_id: str, note: str):

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
    store.save(record.moved(states.AttemptState.ABANDONED, error=f"{record.error or ''} [{note}]".strip()))
    return record


@tasks.command("abandon")
@click.argument("attempt_id")
@click.option("--storage", "storage_url", default=None)
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
@click.option("--storage", "storage_url", default=None)
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
    from seedance_pipeline.definitions import build_definitions
    from seedance_pipeline.lineage.partitions import clip_key
    from seedance_pipeline.providers.resource import SeedanceProviders
    from seedance_pipeline.runner import dagster_instance

    defs = build_definitions(store.storage, SeedanceProviders.from_env())
    result = defs.resolve_job_def(CLIPS_JOB).execute_in_process(
        instance=dagster_instance(),
        partition_key=str(clip_key(record.image, record.prompt)),
        raise_on_error=False,
        run_config={"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}},
    )
    click.echo(f"run {result.run_id}: {'stored' if result.success else 'failed (see the Dagster UI)'}")
    sys.exit(EXIT_OK if result.success else EXIT_FAILED)


def run() -> None:  # pragma: no cover - console entry convenience
    try:
        main()
    except SeedanceError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_FAILED)
