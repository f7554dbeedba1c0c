"""The ASGI app: each provider mounted under ``/<provider>``, control routes under ``/_sim``.

A provider's base URL is ``http://HOST:PORT/<provider>``; below it every path is the provider's
real one. Control routes:

* ``GET /_sim/stats`` – request counters, submits_by_key, tasks per provider, fault bookkeeping
* ``POST /_sim/reset`` – forget tasks, counters, submits (config and assets stay)
* ``PUT /_sim/config`` (SimConfig JSON) / ``GET /_sim/config``
* ``GET /_sim/tasks`` – every task with its phase and timing
* ``PUT /_sim/assets/<name>`` (raw bytes) / ``GET /_sim/assets/<name>`` – a tiny file host, so
  tests can hand the providers an image URL that the simulator itself can fetch
"""

from __future__ import annotations

from types import ModuleType

from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.types import ASGIApp

from seedance_pipeline.simulator import jiekou, modelark, novita, outputs, runpod, vibedream, wavespeed
from seedance_pipeline.simulator.config import SimConfig
from seedance_pipeline.simulator.faults import FaultMiddleware
from seedance_pipeline.simulator.state import Simulator

MODULES: dict[str, ModuleType] = {m.NAME: m for m in (runpod, wavespeed, jiekou, novita, vibedream, modelark)}


def _provider_app(sim: Simulator, module: ModuleType) -> Starlette:
    async def not_found(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 404
        message = "Not Found" if status == 404 else "Method Not Allowed"
        return module.error_response(status, f"{message}: {request.method} {request.url.path}")

    return Starlette(
        routes=[*module.routes(sim), outputs.route(sim, module.NAME)],
        exception_handlers={404: not_found, 405: not_found},
    )


def _control_routes(sim: Simulator) -> list[Route]:
    async def stats(request: Request) -> Response:
        return JSONResponse(sim.stats())

    async def reset(request: Request) -> Response:
        sim.reset()
        return JSONResponse({"ok": True})

    async def put_config(request: Request) -> Response:
        try:
            config = SimConfig.model_validate_json(await request.body())
        except ValidationError as exc:
            return JSONResponse({"error": "invalid SimConfig", "detail": exc.errors(include_url=False)}, 422)
        sim.configure(config)
        return JSONResponse({"ok": True, "config": config.model_dump(mode="json")})

    async def get_config(request: Request) -> Response:
        return JSONResponse(sim.config.model_dump(mode="json"))

    async def tasks(request: Request) -> Response:
        return JSONResponse({"tasks": sim.tasks()})

    async def put_asset(request: Request) -> Response:
        name = request.path_params["name"]
        sim.put_asset(name, await request.body(), request.headers.get("content-type"))
        return JSONResponse({"ok": True, "path": f"/_sim/assets/{name}"})

    async def get_asset(request: Request) -> Response:
        asset = sim.get_asset(request.path_params["name"])
        if asset is None:
            return JSONResponse({"error": "no such asset"}, 404)
        data, content_type = asset
        return Response(data, media_type=content_type)

    return [
        Route("/_sim/stats", stats, methods=["GET"]),
        Route("/_sim/reset", reset, methods=["POST"]),
        Route("/_sim/config", put_config, methods=["PUT"]),
        Route("/_sim/config", get_config, methods=["GET"]),
        Route("/_sim/tasks", tasks, methods=["GET"]),
        Route("/_sim/assets/{name:path}", put_asset, methods=["PUT"]),
        Route("/_sim/assets/{name:path}", get_asset, methods=["GET"]),
    ]


def build_app(sim: Simulator) -> ASGIApp:
    mounts = [Mount(f"/{name}", app=_provider_app(sim, module)) for name, module in MODULES.items()]
    app = Starlette(routes=[*_control_routes(sim), *mounts])
    return FaultMiddleware(app, sim, MODULES)
