"""JieKou AI (接口AI) ``seedance-v1.5-pro-i2v`` (docs/providers.md §5): the shared v3 async platform.

Submit answers ``{"task_id": ...}`` (JieKou's Seedance docs); everything else is in v3async.py.
"""

from __future__ import annotations

from starlette.routing import Route

from seedance_pipeline.simulator import v3async
from seedance_pipeline.simulator.state import Simulator

NAME = "jiekou"
classify = v3async.classify
error_response = v3async.error_response
fault_response = v3async.fault_response


def routes(sim: Simulator) -> list[Route]:
    return v3async.routes(sim, NAME, submit_id_field=lambda: "task_id")
