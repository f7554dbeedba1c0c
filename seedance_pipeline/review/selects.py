"""Selects: the approved take of each pair, copied to ``selects/<prompt>/<image>.mp4`` with a row beside it
(``<image>.json``), and one ``selects/<prompt>/manifest.csv`` per prompt for the tools downstream.

A pair's select is its newest approved take (by take number): a take approved earlier stays while a newer take
waits for its review (a prompt edit, a retake), and is replaced only when a newer take is approved. A take whose
approval is withdrawn (rejected later) leaves selects, and an older approved take takes its place if there is one.
Approving pays for nothing: the take is copied inside storage.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from dataclasses import dataclass

from seedance_pipeline.core.errors import BadFile
from seedance_pipeline.review.records import APPROVED, Decision, PairReviews
from seedance_pipeline.review.store import ReviewStore, pair_files
from seedance_pipeline.review.takes import pair_takes
from seedance_pipeline.storage import layout
from seedance_pipeline.storage.resource import SeedanceStorage

Pair = tuple[str, str]  # (image, prompt)
MANIFEST_COLUMNS = (
    "image",
    "prompt",
    "provider",
    "seed",
    "take",
    "fingerprint",
    "cost_usd",
    "reviewer",
    "approved_at",
    "note",
    "path",
)


@dataclass(frozen=True)
class Placed:
    image: str
    prompt: str
    row: dict | None  # the select's manifest row; None: the pair has no approved take (any old select removed)
    changed: bool  # False: selects already held exactly this


def approved(reviews: PairReviews) -> Decision | None:
    """The newest take whose own newest decision is an approval."""
    latest = {d.fingerprint: d for d in reviews.decisions}  # later decisions win
    return max((d for d in latest.values() if d.state == APPROVED), key=lambda d: d.take, default=None)


def out_of_step(storage: SeedanceStorage, pairs: Iterable[Pair] | None = None) -> list[Pair]:
    """Pairs whose select differs from what the review files approve (approved since, withdrawn, edited by hand):
    one listing of ``reviews/`` and one of ``selects/``, and one batched read of each."""
    wanted = set(pairs) if pairs is not None else None
    reviews = pair_files(storage, layout.REVIEWS, wanted)
    rows = pair_files(storage, layout.SELECTS, wanted)
    blobs = storage.fs.cat([*reviews.values(), *rows.values()], on_error="omit") if reviews or rows else {}
    store = ReviewStore(storage)
    out = []
    for pair in sorted(set(reviews) | set(rows)):
        image, prompt = pair
        decision = None
        if pair in reviews and reviews[pair] in blobs:
            try:
                decision = approved(store.parse(reviews[pair], blobs[reviews[pair]], prompt, image))
            except BadFile:  # `review list` names the file; its pair's select is left as it is
                continue
        held = _fingerprint(blobs.get(rows[pair])) if pair in rows else None
        if (decision.fingerprint if decision else None) != held:
            out.append(pair)
    return out


def place(storage: SeedanceStorage, image: str, prompt: str) -> Placed:
    """Bring the pair's select in step with its reviews (a review file that breaks a rule raises ``BadFile``)."""
    decision = approved(ReviewStore(storage).load(prompt, image))
    mp4, row_path = storage.path(layout.select_clip(prompt, image)), storage.path(layout.select_row(prompt, image))
    try:
        held = _fingerprint(storage.read_bytes(row_path))
    except FileNotFoundError:
        held = None
    if decision is None:
        for path in (row_path, mp4):  # the row first: a select without its row is never listed
            if storage.exists(path):
                storage.fs.rm(path)
        return Placed(image, prompt, None, changed=held is not None)
    take = next((t for t in pair_takes(storage, prompt, image) if t.fingerprint == decision.fingerprint), None)
    if take is None:
        raise FileNotFoundError(f"take {decision.take} of {image}|{prompt} ({decision.fingerprint[:12]}) is not stored")
    row = {
        "image": image,
        "prompt": prompt,
        "provider": take.sidecar.get("provider"),
        "seed": take.sidecar.get("seed"),
        "take": decision.take,
        "fingerprint": decision.fingerprint,
        "cost_usd": take.cost_usd,
        "reviewer": decision.reviewer,
        "approved_at": decision.at.isoformat(),
        "note": decision.note,
        "path": layout.select_clip(prompt, image),
    }
    if held == decision.fingerprint:
        return Placed(image, prompt, row, changed=False)
    storage.copy_file(take.path, mp4)
    storage.write_bytes(row_path, (json.dumps(row, indent=1, sort_keys=True) + "\n").encode())
    return Placed(image, prompt, row, changed=True)


def read_row(storage: SeedanceStorage, image: str, prompt: str) -> dict | None:
    """The pair's select row, None when it has no select."""
    try:
        return json.loads(storage.read_bytes(storage.path(layout.select_row(prompt, image))))
    except FileNotFoundError:
        return None


def write_manifest(storage: SeedanceStorage, prompt: str) -> tuple[str, int]:
    """``selects/<prompt>/manifest.csv`` from the prompt's select rows: its path and its number of rows."""
    folder = storage.path(layout.SELECTS, prompt)
    paths = [p for p in storage.list_folder(folder) if p.endswith(".json") and "/" not in p[len(folder) + 1 :]]
    blobs = storage.fs.cat(paths, on_error="omit") if paths else {}
    rows = sorted((json.loads(b) for b in blobs.values()), key=lambda r: r["image"])
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=MANIFEST_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    path = storage.path(layout.manifest(prompt))
    storage.write_bytes(path, out.getvalue().encode())
    return path, len(rows)


def _fingerprint(blob: bytes | None) -> str | None:
    try:
        return json.loads(blob)["fingerprint"] if blob else None
    except (ValueError, KeyError, TypeError):
        return None
