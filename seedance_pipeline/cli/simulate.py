"""``seedance-pipeline simulate``: the built-in simulator of every provider, on its own."""

from __future__ import annotations

from pathlib import Path

import click

from seedance_pipeline.providers import PROVIDERS


@click.command()
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
    """Serve every provider's API under http://HOST:PORT/<provider>."""
    from seedance_pipeline.simulator.config import SimConfig
    from seedance_pipeline.simulator.server import serve

    config = SimConfig.model_validate_json(Path(config_file).read_text()) if config_file else SimConfig()
    click.echo(f"simulator on http://{host}:{port}/<{'|'.join(PROVIDERS)}>", err=True)
    serve(host, port, config)
