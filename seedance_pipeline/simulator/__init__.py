"""A local simulator of the Seedance 1.5 Pro i2v providers (five hosted ones and ByteDance's own), over real HTTP.

Public API: ``SimConfig`` / ``ProviderSimConfig`` / ``FaultRule`` (config.py), ``Simulator``
(state.py), ``build_app`` (app.py), ``SimulatorServer`` / ``serve`` (server.py).
"""

from seedance_pipeline.simulator.config import PROVIDERS, FaultRule, ProviderSimConfig, SimConfig
from seedance_pipeline.simulator.state import Simulator, submit_key

__all__ = [
    "PROVIDERS",
    "FaultRule",
    "ProviderSimConfig",
    "SimConfig",
    "Simulator",
    "SimulatorServer",
    "build_app",
    "serve",
    "submit_key",
]


def __getattr__(name: str):  # the server and app pull in uvicorn/starlette only when asked for
    if name in ("SimulatorServer", "serve"):
        from seedance_pipeline.simulator import server

        return getattr(server, name)
    if name == "build_app":
        from seedance_pipeline.simulator.app import build_app

        return build_app
    raise AttributeError(name)
