"""``seedance-pipeline``: the command line, one module per command group.

``main`` is the console script. It is also the one error boundary: an error the project raises on purpose
(``core/errors.py``) ends the command with one line on stderr, never a traceback: exit 2 when it was refused
before anything was sent (a bad setting, a bad request), 1 otherwise.
"""

from __future__ import annotations

from typing import Any

import click

from seedance_pipeline.cli.common import EXIT_FAILED, EXIT_REJECTED
from seedance_pipeline.cli.demo_data import demo_data
from seedance_pipeline.cli.generate import generate
from seedance_pipeline.cli.pipeline import backfill, forecast, run_command
from seedance_pipeline.cli.review import gallery, review
from seedance_pipeline.cli.simulate import simulate
from seedance_pipeline.cli.tasks import tasks
from seedance_pipeline.core.errors import BadFile, InvalidRequest, MissingApiKey, SeedanceError, SettingError

REFUSED = (SettingError, InvalidRequest, MissingApiKey, BadFile)  # nothing was sent


class _Commands(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except SeedanceError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(EXIT_REJECTED if isinstance(exc, REFUSED) else EXIT_FAILED)


@click.group(cls=_Commands)
def main() -> None:
    """Seedance 1.5 Pro image-to-video clips from five providers, orchestrated by Dagster."""


for command in (generate, simulate, demo_data, run_command, forecast, backfill, tasks, review, gallery):
    main.add_command(command)
