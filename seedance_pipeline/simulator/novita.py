"""Novita AI ``seedance-v1.5-pro-i2v`` (docs/providers.md §5): the shared v3 async platform.

Novita's docs disagree on the submit response's id field (OpenAPI example ``task_id``, prose
``id``), so it follows ``ProviderSimConfig.submit_id_field`` (default ``task_id``).
"""

from __future__ import annotations

from starlette.routing import Route

from seedance_pipeline.simulator import v3async
from seedance_pipeline.simulator.state import Simulator

NAME = "novita"
classify = v3async.classify
error_response = v3async.error_response
fault_response = v3async.fault_response


def routes(sim: Simulator) -> list[Route]:
    return v3async.routes(sim, NAME, submit_id_field=lambda: sim.provider_config(NAME).submit_id_field)
