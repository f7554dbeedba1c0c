"""Progress of the long commands (``run``, ``backfill``, ``gallery``), on stderr so stdout stays the result (a table
or ``--json``): on a terminal a live line per step (rich, which Dagster installs) with a count where the step has
one, and elsewhere (CI, a pipe, a log file) one plain line per step as it ends."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TextIO

import click

_REFRESH_S = 0.5  # how often a terminal's count is read again


class Progress:
    def __init__(self, command: str, stream: TextIO | None = None):
        self.command = command
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty()

    @contextmanager
    def step(self, name: str, total: int | None = None, count: Callable[[], int] | None = None) -> Iterator[None]:
        """One step; ``count`` (terminal only, read every half second) says how much of ``total`` is done."""
        started = time.monotonic()
        if not self.live:
            yield
            click.echo(f"{self.command}: {name} done in {time.monotonic() - started:.1f} s", file=self.stream)
            return
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        columns = [SpinnerColumn(), TextColumn(f"{self.command}: {{task.description}}")]
        if total is not None:
            columns += [BarColumn(), MofNCompleteColumn()]
        with Progress(*columns, TimeElapsedColumn(), console=Console(file=self.stream), transient=False) as bar:
            task = bar.add_task(name, total=total)
            stop = threading.Event()

            def follow() -> None:
                while count is not None and not stop.wait(_REFRESH_S):
                    bar.update(task, completed=count())

            watcher = threading.Thread(target=follow, name="seedance-progress", daemon=True)
            watcher.start()
            try:
                yield
            finally:
                stop.set()
                watcher.join()
                bar.update(task, completed=count() if count is not None else total)

    def each(self, name: str, items: list[str]) -> Iterator[str]:
        """``items`` one by one, counted."""
        done = [0]
        with self.step(name, total=len(items), count=lambda: done[0]):
            for item in items:
                yield item
                done[0] += 1
