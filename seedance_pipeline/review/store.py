"""Review files in storage (``reviews/<prompt>/<image>.json``, ``records.py`` gives the format): read with every
rule checked, so a file edited by hand that breaks one is named with the field and the rule and left as it is;
written by appending one decision.

Two people deciding on the same pair at the same moment can lose one decision (the file is read, extended and
written whole); each decision names its take, so a lost one is only made again.
"""

from __future__ import annotations

import getpass
import hashlib
import json

from pydantic import ValidationError

from seedance_pipeline.core.errors import BadFile
from seedance_pipeline.review.records import REJECTED, Decision, PairReviews, now
from seedance_pipeline.review.takes import Take
from seedance_pipeline.storage import layout
from seedance_pipeline.storage.resource import SeedanceStorage


def reviewer() -> str:
    """Who decides: the login name (``LOGNAME``, ``USER``, ... as ``getpass`` reads them)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown reviewer"


def pair_files(storage: SeedanceStorage, top: str, pairs: set[tuple[str, str]] | None = None) -> dict:
    """(image, prompt) -> path of its ``<top>/<prompt>/<image>.json`` (``reviews`` or ``selects``), for the pairs
    among ``pairs`` (all when None): one listing of ``top``."""
    folder = storage.path(top)
    out = {}
    for path in storage.list_folder(folder):
        pair = layout.pair_of(path[len(folder) + 1 :])
        if pair is not None and (pairs is None or pair in pairs):
            out[pair] = path
    return out


class ReviewStore:
    def __init__(self, storage: SeedanceStorage):
        self.storage = storage

    def path(self, prompt: str, image: str) -> str:
        return self.storage.path(layout.review(prompt, image))

    def load(self, prompt: str, image: str) -> PairReviews:
        path = self.path(prompt, image)
        try:
            blob = self.storage.read_bytes(path)
        except FileNotFoundError:
            return PairReviews(image=image, prompt=prompt)
        return self.parse(path, blob, prompt, image)

    def load_prompt(self, prompt: str, images: list[str]) -> tuple[dict[str, PairReviews], list[BadFile]]:
        """The reviews of these pairs of one prompt (one batched read), and the files that break a rule."""
        paths = {self.path(prompt, image): image for image in images}
        blobs = self.storage.fs.cat(list(paths), on_error="omit") if paths else {}
        reviews, problems = {}, []
        for path, image in paths.items():
            if path not in blobs:
                reviews[image] = PairReviews(image=image, prompt=prompt)
                continue
            try:
                reviews[image] = self.parse(path, blobs[path], prompt, image)
            except BadFile as exc:
                problems.append(exc)
        return reviews, problems

    def rejected(self) -> tuple[frozenset[str], str]:
        """The fingerprints of every take whose newest decision is a rejection (files that break a rule are left
        out: ``review list`` names them), and a digest of the review files as read (one listing, one batched
        read). The cost report is built again when the digest changes."""
        paths = [p for p in self.storage.list_folder(self.storage.path(layout.REVIEWS)) if p.endswith(".json")]
        blobs = self.storage.fs.cat(paths, on_error="omit") if paths else {}
        digest = hashlib.sha256()
        out = set()
        for path in sorted(blobs):
            digest.update(path.encode() + b"\0" + blobs[path] + b"\0")
            try:
                decisions = PairReviews.model_validate_json(blobs[path]).decisions
            except ValidationError:
                continue
            latest = {d.fingerprint: d.state for d in decisions}
            out |= {fp for fp, state in latest.items() if state == REJECTED}
        return frozenset(out), digest.hexdigest()

    def decide(self, take: Take, state: str, note: str = "", *, retake: bool = True) -> Decision:
        """Append a decision on ``take``; a review file that breaks a rule is refused and left as it is."""
        path = self.path(take.prompt, take.image)
        reviews = self.load(take.prompt, take.image)
        decision = _checked(
            self.storage.ref(path),
            f"decisions[{len(reviews.decisions)}]",
            dict(
                fingerprint=take.fingerprint,
                take=take.number,
                state=state,
                reviewer=reviewer(),
                at=now(),
                note=note,
                retake=retake,
            ),
        )
        reviews.decisions.append(decision)
        self.storage.write_bytes(path, (reviews.model_dump_json(indent=1) + "\n").encode())
        return decision

    def parse(self, path: str, blob: bytes, prompt: str, image: str) -> PairReviews:
        ref = self.storage.ref(path)
        try:
            raw = json.loads(blob)
        except ValueError as exc:
            raise BadFile(ref, "(file)", blob[:40].decode(errors="replace"), f"must be JSON ({exc})") from None
        try:
            reviews = PairReviews.model_validate(raw)
        except ValidationError as exc:
            raise _bad(ref, "", exc) from None
        for field, own in (("image", image), ("prompt", prompt)):
            if getattr(reviews, field) != own:
                raise BadFile(ref, field, getattr(reviews, field), f"must be {own!r}, the pair this file is for")
        return reviews


def _checked(path: str, where: str, fields: dict) -> Decision:
    try:
        return Decision.model_validate(fields)
    except ValidationError as exc:
        raise _bad(path, where, exc) from None


def _bad(path: str, where: str, exc: ValidationError) -> BadFile:
    """The first broken rule of a validation error, as a ``BadFile`` naming the field."""
    error = exc.errors(include_url=False)[0]
    field = ".".join(f"[{p}]" if isinstance(p, int) else str(p) for p in error["loc"]).replace(".[", "[")
    field = f"{where}.{field}" if where and field else where or field or "(file)"
    rule = error["msg"].removeprefix("Value error, ")
    return BadFile(path, field, error.get("input"), rule)
