"""The takes of a pair: every clip stored for it, each made from its own request (fingerprint), numbered in the
order they were made. The current clip is ``clips/<prompt>/<image>.mp4``; earlier takes are the versions kept when
a new request replaced them (``clips/<prompt>/<image>.versions/<fingerprint>.mp4``), never deleted."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from seedance_pipeline.storage import layout
from seedance_pipeline.storage.resource import SeedanceStorage

VERSIONS = ".versions"


@dataclass(frozen=True)
class Take:
    image: str
    prompt: str
    number: int  # 1 for the pair's first take
    fingerprint: str
    path: str  # the MP4
    sidecar: dict[str, Any]
    current: bool  # the pair's clip now (the others are kept versions)

    @property
    def clip(self) -> str:
        return f"{self.image}|{self.prompt}"

    @property
    def cost_usd(self) -> float:
        """What the take cost: the provider's charge where it reported one, else our estimate."""
        reported = self.sidecar.get("reported_cost_usd")
        return float(reported if reported is not None else self.sidecar.get("estimated_cost_usd") or 0.0)

    @property
    def checks_passed(self) -> bool:
        checks = self.sidecar.get("checks") or {}
        return bool(checks) and all(checks.values())


def prompt_takes(storage: SeedanceStorage, prompt: str) -> dict[str, list[Take]]:
    """Image -> its takes, oldest first, for every pair of ``prompt`` with a stored clip: one listing of the
    prompt's clip folder and one batched read of its sidecars."""
    folder = storage.path(layout.clip_folder(prompt))
    sidecars: dict[str, list[tuple[str, bool]]] = {}  # image -> [(sidecar path, current)]
    for path in storage.list_folder(folder):
        rel = path[len(folder) + 1 :]
        if not rel.endswith(".json") or ".part-" in rel:
            continue
        head, _, tail = rel.partition("/")
        if not tail:
            sidecars.setdefault(rel[: -len(".json")], []).append((path, True))
        elif head.endswith(VERSIONS) and "/" not in tail:
            sidecars.setdefault(head[: -len(VERSIONS)], []).append((path, False))
    blobs = storage.fs.cat([p for places in sidecars.values() for p, _ in places], on_error="omit")
    out = {}
    for image, places in sorted(sidecars.items()):
        takes = _number(image, prompt, [(p, current, blobs.get(p)) for p, current in places])
        if any(t.current for t in takes):  # a pair whose clip is gone has no current take to review
            out[image] = takes
    return out


def pair_takes(storage: SeedanceStorage, prompt: str, image: str) -> list[Take]:
    """The takes of one pair, oldest first ([] when it has no stored clip)."""
    own = layout.sidecar_of(storage.clip_path(prompt, image))
    kept = [p for p in storage.list_folder(storage.path(layout.versions_of(prompt, image))) if p.endswith(".json")]
    blobs = storage.fs.cat([own, *kept], on_error="omit")
    takes = _number(image, prompt, [(p, p == own, blobs.get(p)) for p in [own, *kept]])
    return takes if any(t.current for t in takes) else []


def _number(image: str, prompt: str, sidecars: list[tuple[str, bool, bytes | None]]) -> list[Take]:
    """One take per fingerprint (a kept version copied back as the current clip is the same take), in the order
    the clips were made."""
    found: dict[str, tuple[float, str, dict, bool]] = {}
    for path, current, blob in sidecars:
        try:
            sidecar = json.loads(blob) if blob is not None else None
        except ValueError:
            sidecar = None
        if not isinstance(sidecar, dict) or not isinstance(sidecar.get("fingerprint"), str):
            continue
        fp = sidecar["fingerprint"]
        made = float(sidecar.get("created_at") or 0.0)
        if fp not in found or current:
            found[fp] = (made, path, sidecar, current)
    ordered = sorted(found.items(), key=lambda kv: (kv[1][0], kv[0]))
    return [
        Take(image, prompt, n, fp, layout.clip_of(path), sidecar, current)
        for n, (fp, (_, path, sidecar, current)) in enumerate(ordered, start=1)
    ]
