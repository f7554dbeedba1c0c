"""What every command shares: exit codes, the one way ``--storage`` becomes a storage, JSON output, and the
context of the pipeline commands (instance, storage, providers, sources refreshed)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    import dagster as dg

    from seedance_pipeline.cli.progress import Progress
    from seedance_pipeline.providers.resource import SeedanceProviders
    from seedance_pipeline.storage.resource import SeedanceStorage

EXIT_OK, EXIT_FAILED, EXIT_REJECTED = 0, 1, 2

storage_option = click.option(
    "--storage",
    "storage_url",
    default=None,
    help="Storage URL (a folder or s3://bucket/prefix); default $SEEDANCE_STORAGE_URL or ./.seedance/storage.",
)


json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")


def open_storage(storage_url: str | None) -> SeedanceStorage:
    """The storage a command works on: ``--storage`` if given, with every other setting from the environment."""
    from seedance_pipeline.storage.resource import SeedanceStorage

    return SeedanceStorage.from_env(url=storage_url)


def emit(as_json: bool, payload: dict[str, Any]) -> None:
    if as_json:
        click.echo(json.dumps(payload, sort_keys=True))


def pipeline_context(
    storage_url: str | None, progress: Progress | None = None
) -> tuple[dg.DagsterInstance, SeedanceStorage, SeedanceProviders, dg.Definitions]:
    """Instance, storage and providers as ``run`` uses them, with the sources refreshed from storage."""
    from seedance_pipeline.cli.runner import Executor, RunReport, dagster_instance, refresh_sources
    from seedance_pipeline.definitions import build_definitions
    from seedance_pipeline.providers.resource import SeedanceProviders

    storage = open_storage(storage_url)
    providers = SeedanceProviders.from_env()
    instance = dagster_instance()
    defs = build_definitions(storage, providers)
    report = RunReport()
    refresh_sources(instance, storage, Executor(instance, defs, report, "CRITICAL", progress))
    for line in report.retired:
        click.echo(f"retired {line}", err=True)
    for line in report.ignored:
        click.echo(f"ignored {line}", err=True)
    for line in report.failures:
        click.echo(f"FAILED {line}", err=True)
    return instance, storage, providers, defs


def selection_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``--prompt``, ``--image`` (repeatable) and ``--storage``."""
    for option in reversed(
        [
            click.option("--prompt", "prompts", multiple=True, help="Only these prompt keys (repeatable)."),
            click.option("--image", "images", multiple=True, help="Only these image keys (repeatable)."),
            storage_option,
        ]
    ):
        fn = option(fn)
    return fn
