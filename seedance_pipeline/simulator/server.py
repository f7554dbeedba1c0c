"""Run the simulator over real HTTP: ``SimulatorServer`` (a daemon thread, for tests) and ``serve``.

with SimulatorServer(SimConfig(...)) as srv:
    base = srv.provider_url("runpod")      # http://127.0.0.1:PORT/runpod
    image_url = srv.put_asset("a.png", png_bytes)
    ...
    srv.sim.stats()
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import threading
import time
from typing import Any

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from seedance_pipeline.simulator.app import build_app
from seedance_pipeline.simulator.config import PROVIDERS, SimConfig
from seedance_pipeline.simulator.faults import TRANSPORT_EXTENSION
from seedance_pipeline.simulator.state import RenderFn, Simulator


class TransportAwareH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, handing each request's transport to the app via scope extensions."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        inner = self.app

        async def app(scope: Any, receive: Any, send: Any) -> None:
            extensions = dict(scope.get("extensions") or {})
            extensions[TRANSPORT_EXTENSION] = {"transport": transport}
            scope["extensions"] = extensions
            await inner(scope, receive, send)

        self.app = app


class _QuickStopServer(uvicorn.Server):
    """uvicorn.Server that stops in milliseconds rather than ~0.2 s (tests start one per test).

    The main loop wakes on ``request_exit`` instead of polling every 0.1 s, and shutdown waits
    for open connections and request tasks in 5 ms steps (up to ``timeout_graceful_shutdown``)
    instead of fixed 0.1 s sleeps. Same steps as uvicorn's own shutdown otherwise.
    """

    _loop: asyncio.AbstractEventLoop | None = None
    _wake: asyncio.Event | None = None

    async def main_loop(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        counter = 0
        while not await self.on_tick(counter):
            counter = (counter + 1) % 864000
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), 0.1)

    def request_exit(self) -> None:
        self.should_exit = True
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # loop already closed
                loop.call_soon_threadsafe(wake.set)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        state = getattr(self, "server_state", None)
        if state is None or not hasattr(state, "connections") or not hasattr(self, "servers"):
            return await super().shutdown(sockets=sockets)  # an uvicorn we do not know: its own way
        loop = asyncio.get_running_loop()
        for server in self.servers:
            server.close()
        for connection in list(state.connections):
            connection.shutdown()
        deadline = loop.time() + (self.config.timeout_graceful_shutdown or 0)
        while (state.connections or state.tasks) and loop.time() < deadline:
            await asyncio.sleep(0.005)
        for task in list(state.tasks):
            task.cancel()
        for server in self.servers:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(server.wait_closed(), 1.0)
        if not self.force_exit:
            await self.lifespan.shutdown()


def _uvicorn_config(app: Any, log_level: str = "warning", **kw: Any) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        http=TransportAwareH11Protocol,
        ws="none",
        lifespan="off",
        log_level=log_level,
        access_log=False,
        timeout_graceful_shutdown=2,
        **kw,
    )


class SimulatorServer:
    """The simulator on a free loopback port, in a daemon thread; starts on construction."""

    def __init__(
        self,
        config: SimConfig | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        render_fn: RenderFn | None = None,
        start_timeout_s: float = 10.0,
    ):
        self.sim = Simulator(config, render_fn=render_fn)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._sock = socket.socket(family, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, port))
        self.host, self.port = host, self._sock.getsockname()[1]
        shown = f"[{host}]" if ":" in host else host
        self.base_url = f"http://{shown}:{self.port}"
        self._server = _QuickStopServer(_uvicorn_config(build_app(self.sim)))
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, name="seedance-simulator", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + start_timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the simulator server did not start")
            time.sleep(0.01)

    def quiet(self) -> bool:
        """Nothing sent to the simulator is still to be handled: no connection waiting to be accepted or open, no
        request being parsed or answered. ``Simulator.in_flight`` alone counts a request only once the app has it:
        a request whose client was killed right after sending it may still sit in the socket's buffers or in
        uvicorn's parser, and becomes a task at the provider after that count says zero."""
        state = self._server.server_state
        return not (state.connections or state.tasks or self.sim.in_flight() or _accept_queue(self._sock))

    def provider_url(self, name: str) -> str:
        if name not in PROVIDERS:
            raise ValueError(f"unknown provider {name!r}; known: {', '.join(PROVIDERS)}")
        return f"{self.base_url}/{name}"

    def put_asset(self, name: str, data: bytes, content_type: str | None = None) -> str:
        """Host ``data`` on the simulator; returns its absolute URL (usable as an image URL)."""
        return self.base_url + self.sim.put_asset(name, data, content_type)

    def configure(self, config: SimConfig) -> None:
        self.sim.configure(config)

    def stop(self) -> None:
        self._server.request_exit()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=10)
        self.sim.close()
        with contextlib.suppress(OSError):
            self._sock.close()

    def __enter__(self) -> SimulatorServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _accept_queue(sock: socket.socket) -> int:
    """Connections the kernel completed on listening ``sock`` that the server has not accepted yet (Linux: the
    rx_queue of its row in /proc/net/tcp or tcp6); 0 where that table cannot be read."""
    inode = str(os.fstat(sock.fileno()).st_ino)
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as rows:
            for row in rows.readlines()[1:]:
                fields = row.split()
                if len(fields) > 9 and fields[9] == inode:
                    return int(fields[4].split(":")[1], 16)
    return 0


def serve(host: str = "127.0.0.1", port: int = 8000, config: SimConfig | None = None) -> None:
    """Run the simulator in the foreground until interrupted (the ``simulate`` CLI command)."""
    sim = Simulator(config)
    try:
        uvicorn.Server(_uvicorn_config(build_app(sim), log_level="info", host=host, port=port)).run()
    finally:
        sim.close()
