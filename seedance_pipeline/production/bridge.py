"""Run a coroutine on a thread and event loop of its own, and hand what it sends to the calling thread.

Dagster stores every event a step yields before it asks the step for the next one, in the step's
thread (benchmarks/README.md, "Measurements behind the code", M2). An ``async def`` asset's event loop stands
still meanwhile, so every other clip's polls, downloads and submits wait behind each stored event.
The ``clips`` step therefore produces on anyio's blocking portal (its own thread and loop) and yields
from the Dagster thread whatever the production sends: provider I/O goes on while Dagster writes.
"""

from __future__ import annotations

import queue
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import anyio.from_thread

from seedance_pipeline.production.messages import Log, LogLevel, Message

Send = Callable[[Message], None]
_END = object()


@contextmanager
def in_background(main: Callable[[Send], Awaitable[None]], *, name: str) -> Iterator[Iterator[Any]]:
    """Start ``main(send)`` on its own thread; iterate what it sends, in order, as it sends it.

    The iteration ends when ``main`` returns, and raises what ``main`` raised. Leaving the ``with``
    before that (an error, or the run being stopped) cancels ``main`` and waits for its clean-up.
    """
    outbox: queue.SimpleQueue = queue.SimpleQueue()
    with anyio.from_thread.start_blocking_portal(name=name) as portal:
        future = portal.start_task_soon(main, outbox.put)
        future.add_done_callback(lambda _: outbox.put(_END))

        def received() -> Iterator[Any]:
            while (item := outbox.get()) is not _END:
                yield item
            future.result()

        try:
            yield received()
        finally:
            future.cancel()  # a no-op once main has returned


class RelayLog:
    """A logger for code on the background thread: each line is sent as a ``messages.Log`` for the Dagster
    thread to write to the run's log (Dagster's log manager is not shared across threads)."""

    def __init__(self, send: Send):
        self._send = send

    def _emit(self, level: LogLevel, msg: str, args: tuple) -> None:
        self._send(Log(level, msg % args if args else msg))

    def debug(self, msg: str, *args: Any) -> None:
        self._emit("debug", msg, args)

    def info(self, msg: str, *args: Any) -> None:
        self._emit("info", msg, args)

    def warning(self, msg: str, *args: Any) -> None:
        self._emit("warning", msg, args)

    def error(self, msg: str, *args: Any) -> None:
        self._emit("error", msg, args)
