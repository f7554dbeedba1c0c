"""``seedance-pipeline generate``: one clip from one provider, outside Dagster (exit 0 stored, 2 rejected before
anything was sent, 1 failed after sending)."""

from __future__ import annotations

import asyncio
import os
import sys
from contextlib import ExitStack

import click
import fsspec

from seedance_pipeline.cli.common import EXIT_FAILED, EXIT_REJECTED, emit
from seedance_pipeline.clip.generate import generate_clip
from seedance_pipeline.clip.prepare import build_request, default_presigner, prepare
from seedance_pipeline.core import settings
from seedance_pipeline.core.errors import InvalidRequest, MissingApiKey, ProviderError
from seedance_pipeline.core.request import AspectRatio, Resolution
from seedance_pipeline.ledger.states import AttemptState
from seedance_pipeline.providers import PROVIDERS, get_adapter
from seedance_pipeline.providers.engine import ClientSettings, ProviderClient
from seedance_pipeline.providers.routing import SIMULATOR_KEY, route
from seedance_pipeline.storage import layout


@click.command()
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
@click.option(
    "--service-tier", type=click.Choice(["default", "flex"]), default=None, help="JieKou, Novita and ModelArk only."
)
@click.option(
    "--execution-expires-after",
    type=int,
    default=None,
    help="Seconds (3600..259200) the task may take before it expires unbilled; JieKou, Novita and ModelArk only.",
)
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
    execution_expires_after,
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
                execution_expires_after=execution_expires_after,
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
            emit(as_json, summary)
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
            emit(as_json, summary)
            sys.exit(EXIT_FAILED)
    click.echo(
        f"stored {out} ({result.size_bytes} bytes) from {provider} task {result.task_id}; "
        f"estimated ${result.estimated_cost_usd:.4f}"
        + (f", provider reported ${result.reported_cost_usd:.4f}" if result.reported_cost_usd is not None else "")
        + (f"; last frame stored at {result.last_frame}" if result.last_frame else ""),
        err=as_json,
    )
    summary.update(result.as_dict(), output=out, simulated=simulator)
    emit(as_json, summary)


async def _generate(adapter, api_key, base_url, client_settings, prepared, fs, path):
    def show(snap):
        progress = f" {snap.progress:.0f}%" if snap.progress is not None else ""
        click.echo(f"  {adapter.name} task {snap.task_id}: {snap.state.value}{progress}", err=True)

    async with ProviderClient(adapter, api_key, base_url=base_url, settings=client_settings) as client:
        last_frame = layout.last_frame_of(path) if path.endswith(".mp4") else None
        return await generate_clip(client, prepared, fs, path, on_update=show, last_frame_path=last_frame)
