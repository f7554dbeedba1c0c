"""What the poll schedules learned, kept in storage (``state/latency.json``) so that a run starts from what
earlier runs learned about each provider and request shape, instead of from the engine's prior.

The file holds, per provider (``<provider>@simulator`` for the built-in simulator: its durations say nothing
about the real API) and per shape (``480p/4s/silent``), the newest ``PollSchedule.KEEP`` brackets of task
durations as ``[lo, hi, bracketed, at]``. Several processes may run at once: each reads the file when its
clients start and, when they stop, merges what it learned into what is on storage at that moment (a union, the
newest kept) and writes it whole. Two processes writing in the same instant may lose the other's new samples,
never corrupt the file or mix providers; a file that cannot be read is started afresh. Delete it to forget.
"""

from __future__ import annotations

import json
import logging
import math
from typing import Any

from seedance_pipeline.providers.engine import PollSchedule, ProviderClient
from seedance_pipeline.providers.engine.schedule import Sample
from seedance_pipeline.storage import layout
from seedance_pipeline.storage.resource import SeedanceStorage

log = logging.getLogger(__name__)

Known = dict[str, dict[str, list[Sample]]]  # route key -> shape -> samples, oldest first


def route_key(provider: str, simulated: bool) -> str:
    return f"{provider}@simulator" if simulated else provider


def _sample(row: Any) -> Sample | None:
    """A stored ``[lo, hi, bracketed, at]``, or None when it is not one (the file may have been edited)."""
    if not isinstance(row, list) or len(row) != 4:
        return None
    lo, hi, bracketed, at = row
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in (lo, hi, at))
    if not numbers or not isinstance(bracketed, bool) or not 0 <= lo <= hi:
        return None
    return Sample(float(lo), float(hi), bracketed, float(at))


def _parse(raw: Any) -> Known:
    known: Known = {}
    for key, shapes in (raw if isinstance(raw, dict) else {}).items():
        for shape, rows in (shapes if isinstance(shapes, dict) else {}).items():
            samples = [s for s in map(_sample, rows if isinstance(rows, list) else []) if s is not None]
            if samples:
                known.setdefault(str(key), {})[str(shape)] = sorted(samples, key=lambda s: s.at)
    return known


class LatencyMemory:
    def __init__(self, storage: SeedanceStorage):
        self.storage = storage
        self.path = storage.path(layout.latency())
        self.known = self._read()

    def _read(self) -> Known:
        try:
            return _parse(json.loads(self.storage.read_bytes(self.path)))
        except FileNotFoundError:
            return {}
        except ValueError as exc:  # not JSON: learning starts again, the run goes on
            log.warning("%s could not be read (%s): poll schedules start from the prior", self.path, exc)
            return {}

    def seed(self, clients: dict[str, tuple[ProviderClient, str]]) -> None:
        """Give each client (with its route key) what earlier runs learned for its provider."""
        for client, key in clients.values():
            client.schedules.seed(self.known.get(key, {}))

    def save(self, clients: dict[str, tuple[ProviderClient, str]]) -> None:
        """Merge what the clients learned into the file as it is now, and write it. A storage error is logged,
        not raised: losing what one run learned costs a few polls, never a clip."""
        try:
            merged = self._read()
            for client, key in clients.values():
                for shape, samples in client.schedules.samples().items():
                    have = merged.setdefault(key, {}).setdefault(shape, [])
                    union = {(s.lo, s.hi, s.bracketed, s.at): s for s in [*have, *samples]}
                    have[:] = sorted(union.values(), key=lambda s: s.at)[-PollSchedule.KEEP :]
            doc = {k: {shape: [list(s) for s in rows] for shape, rows in v.items()} for k, v in merged.items()}
            self.storage.write_bytes(self.path, json.dumps(doc, indent=1, sort_keys=True).encode())
            self.known = merged
        except OSError as exc:
            log.warning("what the poll schedules learned could not be stored at %s: %s", self.path, exc)
