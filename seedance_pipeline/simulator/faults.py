"""Outermost raw ASGI middleware: counts every provider request and applies fault rules.

Dropping a connection needs the socket, which ASGI does not expose. ``server.py`` runs uvicorn
with a protocol that puts the connection's transport into ``scope["extensions"]`` (key
``TRANSPORT_EXTENSION``); as a fallback we take it from uvicorn's ``send`` (a bound method of its
request cycle, which holds ``transport``). A drop sets SO_LINGER 0 and aborts, so the client sees
a reset (httpx: RemoteProtocolError / ReadError) and no response; uvicorn sees the connection
lost before the app returns and sends nothing either.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import struct
from http import HTTPStatus
from types import ModuleType
from typing import Any
from urllib.parse import parse_qsl, urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from seedance_pipeline.simulator import outputs
from seedance_pipeline.simulator.common import FAULT_OUTCOME_KEY
from seedance_pipeline.simulator.config import OUTCOME_KINDS, FaultRule
from seedance_pipeline.simulator.state import Simulator

TRANSPORT_EXTENSION = "seedance.sim.transport"
TRICKLE_PIECES = 10
_CORRUPT_FILLER = b"<html><body><h1>502 Bad Gateway</h1><p>upstream returned an invalid response</p></body></html>\n"


def find_transport(scope: Scope, send: Send) -> Any:
    ext = (scope.get("extensions") or {}).get(TRANSPORT_EXTENSION)
    if ext and ext.get("transport") is not None:
        return ext["transport"]
    return getattr(getattr(send, "__self__", None), "transport", None)


async def abort_connection(scope: Scope, send: Send, *, reset: bool = True) -> None:
    transport = find_transport(scope, send)
    if transport is None:
        raise RuntimeError("cannot drop the connection: no transport (run the simulator under uvicorn)")
    if reset:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()
    # Let uvicorn's connection_lost run so it marks the cycle disconnected (no 500 afterwards).
    for _ in range(3):
        await asyncio.sleep(0)


async def _drain(transport: Any, limit_s: float = 2.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit_s
    while transport.get_write_buffer_size() > 0 and loop.time() < deadline:
        await asyncio.sleep(0.005)
    await asyncio.sleep(0.02)


async def _buffer_request(receive: Receive) -> Receive:
    """Read the whole request body now; the returned receive replays it, then defers to the original."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    pending: list[Message] = [{"type": "http.request", "body": b"".join(chunks), "more_body": False}]

    async def replay() -> Message:
        return pending.pop() if pending else await receive()

    return replay


def _corrupt(body: bytes) -> bytes:
    reps = len(body) // len(_CORRUPT_FILLER) + 1
    return (_CORRUPT_FILLER * reps)[: len(body)]


class FaultMiddleware:
    def __init__(self, app: ASGIApp, sim: Simulator, modules: dict[str, ModuleType]):
        self.app, self.sim, self.modules = app, sim, modules

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        self.sim.request_started()
        try:
            return await self._handle(scope, receive, send)
        finally:
            self.sim.request_ended()

    async def _handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        _, _, rest = scope["path"].partition("/")
        provider, slash, sub = rest.partition("/")
        module = self.modules.get(provider)
        if module is None:
            return await self.app(scope, receive, send)
        sub = slash + sub
        method = scope["method"]
        endpoint = "download" if outputs.is_download(method, sub) else module.classify(method, sub)
        self.sim.count(provider, endpoint)
        rule = self.sim.match_fault(provider, endpoint)
        if rule is not None:
            return await self._apply(rule, module, endpoint, scope, receive, send)
        if endpoint != "submit":
            return await self.app(scope, receive, send)
        reserved = self.sim.reserve_submit(provider)
        if reserved is None:  # the rate limit: 429, and no Retry-After, as WaveSpeed's entry tier answers
            return await _error(module, 429, endpoint, "Too Many Requests: rate limit exceeded", None)(
                scope, receive, send
            )
        status: list[int] = []

        async def watched(message: Message) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, watched)
        finally:
            self.sim.settle_submit(provider, reserved, bool(status) and 200 <= status[0] < 300)

    async def _apply(
        self, rule: FaultRule, module: ModuleType, endpoint: str, scope: Scope, receive: Receive, send: Send
    ) -> None:
        kind = rule.kind
        if kind in OUTCOME_KINDS:
            scope[FAULT_OUTCOME_KEY] = kind
            return await self.app(scope, receive, send)
        if kind == "drop_before":
            return await abort_connection(scope, send)
        if kind in ("http_429", "http_status", "down", "echo_auth"):
            if kind == "http_429":
                status = 429
            elif kind in ("down", "echo_auth") and "status" not in rule.model_fields_set:
                status = 503 if kind == "down" else 500
            else:
                status = rule.status
            headers = {"Retry-After": rule.retry_after} if rule.retry_after is not None else None
            message = "Too Many Requests: rate limit exceeded" if status == 429 else _phrase(status)
            if kind == "down":
                message = "Service Unavailable: no healthy upstream"
            elif kind == "echo_auth":
                message = f"upstream rejected the request; request headers: {_echoed_headers(scope)}"
            return await _error(module, status, endpoint, message, headers)(scope, receive, send)
        if kind == "redirect":
            location = rule.location or _redirected_self(scope)
            return await Response(b"", status_code=302, headers={"Location": location})(scope, receive, send)
        if kind == "expire_url":
            return await outputs.expired_response()(scope, receive, send)
        if kind == "delay":
            # The request has arrived; the server is just slow. Read it first, so a client that
            # gives up meanwhile still leaves a processed request behind (e.g. a created task).
            replay = await _buffer_request(receive)
            await asyncio.sleep(rule.delay_s)
            return await self.app(scope, replay, send)
        # The rest process the request fully, then alter or withhold the response.
        start, body = await self._buffered(scope, receive)
        if kind == "drop_after":
            return await abort_connection(scope, send)
        if kind == "corrupt":
            if start["status"] == 200:
                body = _corrupt(body)
            await send(start)
            return await send({"type": "http.response.body", "body": body, "more_body": False})
        if kind == "truncate":
            await send(start)  # headers announce the full Content-Length
            await send({"type": "http.response.body", "body": body[: len(body) // 2], "more_body": True})
            transport = find_transport(scope, send)
            if transport is not None:
                await _drain(transport)
            return await abort_connection(scope, send, reset=False)
        if kind == "trickle":
            await send(start)
            pieces = max(1, min(TRICKLE_PIECES, len(body)))
            size = -(-len(body) // pieces) if body else 0
            pause = rule.delay_s / pieces
            for i in range(pieces):
                await asyncio.sleep(pause)
                chunk = body[i * size : (i + 1) * size]
                await send({"type": "http.response.body", "body": chunk, "more_body": i < pieces - 1})
            return
        raise AssertionError(f"unhandled fault kind {kind}")

    async def _buffered(self, scope: Scope, receive: Receive) -> tuple[Message, bytes]:
        start: Message = {}
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, capture)
        return start, b"".join(chunks)


def _echoed_headers(scope: Scope) -> str:
    """The request headers as a JSON object, Authorization included (what a leaky gateway sends back)."""
    headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", [])}
    return json.dumps(headers, sort_keys=True)


def _redirected_self(scope: Scope) -> str:
    """The same URL with ``redirected=<n+1>`` in its query: a redirect that leads back to the file."""
    url = Request(scope).url
    query = [(k, v) for k, v in parse_qsl(url.query) if k != "redirected"]
    hops = int(dict(parse_qsl(url.query)).get("redirected", "0") or 0) + 1
    return str(url.replace(query=urlencode([*query, ("redirected", str(hops))])))


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return f"HTTP {status}"


def _error(module: ModuleType, status: int, endpoint: str, message: str, headers: dict[str, str] | None) -> Response:
    """An error answer in the provider's own shape."""
    fault_response = getattr(module, "fault_response", None)
    if fault_response is not None:
        return fault_response(status, endpoint, message, headers)
    return module.error_response(status, message, headers)
