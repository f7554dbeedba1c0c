"""What a provider refused at submit although its page promises it (a resolution, docs/providers.md §5.2):
remembered for the rest of the run and, in storage (``state/refusals.json``), for later runs, so no request is
sent that is known to be refused, and ``provider: auto`` goes straight to the next provider that accepts it.

A refusal is told apart by the provider's answer naming the resolution (a 4xx at submit: nothing was taken,
nothing billed). Delete the file, or the provider's entry in it, to try again once the provider has changed.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from seedance_pipeline.core.errors import SubmitRejected
from seedance_pipeline.providers import ADAPTER_CLASSES
from seedance_pipeline.storage import layout
from seedance_pipeline.storage.resource import SeedanceStorage


class Refusals:
    def __init__(self, storage: SeedanceStorage):
        self.storage = storage
        self.path = storage.path(layout.refusals())
        self._lock = threading.Lock()
        try:
            self.known: dict[str, dict[str, dict[str, Any]]] = json.loads(storage.read_bytes(self.path))
        except (FileNotFoundError, ValueError):
            self.known = {}

    def reason(self, provider: str, resolution: str) -> str | None:
        """Why ``provider`` is known to refuse ``resolution``, or None."""
        entry = self.known.get(provider, {}).get(resolution)
        if entry is None:
            return None
        when = time.strftime("%Y-%m-%d", time.gmtime(entry.get("at", 0)))
        adapter = ADAPTER_CLASSES.get(provider)
        note = dict(adapter.capabilities.notes).get(resolution) if adapter is not None else None
        refused = f"{provider} refused {resolution} at submit on {when} ({entry.get('reason')})"
        return refused + (f"; {note}" if note else "")

    def learn(self, provider: str, resolution: str, error: SubmitRejected) -> bool:
        """Remember the refusal when the provider's answer names the resolution; True if it did."""
        if resolution.lower() not in error.reason.lower():
            return False
        with self._lock:
            self.known.setdefault(provider, {})[resolution] = {"at": time.time(), "reason": error.reason[:300]}
            # Merged with what other processes wrote meanwhile (a read-modify-write of one small file).
            try:
                on_disk = json.loads(self.storage.read_bytes(self.path))
            except (FileNotFoundError, ValueError):
                on_disk = {}
            for name, entries in self.known.items():
                on_disk.setdefault(name, {}).update(entries)
            self.known = on_disk
            self.storage.write_bytes(self.path, json.dumps(on_disk, indent=1, sort_keys=True).encode())
        return True
