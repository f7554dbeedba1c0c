"""Reuse: a stored, checked clip made from exactly the request about to be sent is used instead (no request
at all), found in the pair's own file, its kept earlier versions, or any other clip with that fingerprint."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass

from seedance_pipeline.ledger import states
from seedance_pipeline.ledger.records import AttemptRecord
from seedance_pipeline.ledger.store import TaskStore
from seedance_pipeline.planning.select import Candidate, Item
from seedance_pipeline.storage.layout import sidecar_of
from seedance_pipeline.storage.resource import SeedanceStorage


@dataclass(frozen=True)
class Reuse:
    candidate: Candidate
    sidecar: dict
    copy_from: str | None  # another stored clip with the same fingerprint (None: the clip's own file)


class StoredClips:
    """What the clip folders of some prompts held when it was made: one recursive listing per prompt (one
    paginated LIST on an object store) instead of 2-3 lookups per clip, each a round trip there. Files written
    after it are not in it; a path outside those folders is not known, so ``may_exist`` says True for it."""

    LIST_FROM = 20  # a prompt's clips in one plan; below it, listing a big folder can cost more than the lookups

    @classmethod
    def for_items(cls, storage: SeedanceStorage, items: list[Item], *, local: bool = False) -> StoredClips | None:
        """The listing worth making for these items: on a local folder only if ``local`` (a lookup there is a
        stat; a plan of a whole catalog still saves two failed ones per clip)."""
        if storage.is_local and not local:
            return None
        counts = Counter(it.prompt for it in items)
        prompts = {prompt for prompt, n in counts.items() if n >= cls.LIST_FROM}
        return cls(storage, prompts) if prompts else None

    def __init__(self, storage: SeedanceStorage, prompts: set[str]):
        self._folders = tuple(storage.path("clips", p) + "/" for p in sorted(prompts))
        self._files: set[str] = set()
        for folder in self._folders:  # one listing each on S3, also for a prompt with no clip yet (list_folder)
            self._files.update(storage.list_folder(folder))

    def may_exist(self, path: str) -> bool:
        return path in self._files or not path.startswith(self._folders)


def checked_sidecar(storage: SeedanceStorage, clip_path: str, stored: StoredClips | None = None) -> dict | None:
    """The sidecar of a stored clip whose file is complete and passed both checks, else None."""
    if stored is not None and not stored.may_exist(sidecar_of(clip_path)):
        return None
    fs = storage.fs
    try:
        sidecar = json.loads(storage.read_bytes(sidecar_of(clip_path)))
        size = fs.size(clip_path)
    except (FileNotFoundError, ValueError):
        return None
    checks = sidecar.get("checks") or {}
    if size != sidecar.get("size_bytes") or not checks or not all(checks.values()):
        return None
    return sidecar


def attempts_by_fingerprint(
    store: TaskStore, it: Item, known: set[str] | None = None
) -> dict[str, list[AttemptRecord]]:
    """Every recorded attempt of each of the item's candidate requests; ``known``: the fingerprints with any
    attempt (``TaskStore.fingerprints``), to skip the lookup of the others."""
    return {
        fp: store.for_fingerprint(fp) if known is None or fp in known else []
        for fp in (c.prepared.fingerprint for c in it.candidates)
    }


def find_reusable(
    storage: SeedanceStorage, it: Item, attempts: dict[str, list[AttemptRecord]], stored: StoredClips | None = None
) -> Reuse | None:
    """A stored, checked clip made from exactly one of the item's candidate requests (same fingerprint).

    Looked for in the clip's own file, its kept earlier versions, then any other stored clip with that
    fingerprint (a renamed or copied prompt), found through the attempts recorded per fingerprint.
    """
    own = storage.clip_path(it.prompt, it.image)
    for candidate in it.candidates:
        fp = candidate.prepared.fingerprint
        places = [own, storage.version_path(it.prompt, it.image, fp)]
        for rec in reversed(attempts.get(fp, [])):
            if rec.state in states.REUSABLE and rec.output:
                places += [rec.output, storage.version_path(rec.prompt, rec.image, fp)]
        for place in dict.fromkeys(places):
            sidecar = checked_sidecar(storage, place, stored)
            if sidecar is not None and sidecar.get("fingerprint") == fp:
                return Reuse(candidate, sidecar, None if place == own else place)
    return None


def keep_current_version(
    storage: SeedanceStorage, prompt: str, image: str, fingerprint: str, stored: StoredClips | None = None
) -> str | None:
    """Before a different request replaces a pair's clip, keep a copy of the paid-for one; returns where."""
    own = storage.clip_path(prompt, image)
    sidecar = checked_sidecar(storage, own, stored)
    old = (sidecar or {}).get("fingerprint")
    if not old or old == fingerprint:
        return None
    kept = storage.version_path(prompt, image, old)
    if not storage.exists(sidecar_of(kept)):
        storage.copy_file(own, kept)
        storage.copy_file(sidecar_of(own), sidecar_of(kept))
    return kept
