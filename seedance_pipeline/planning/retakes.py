"""Retakes: a pair whose current take a person rejected is made again, from the same inputs, with a new seed.

Which pairs: the current clip's fingerprint has a rejection as its newest decision, with ``retake`` (not
``--no-retake``), and the pair has fewer takes than ``SEEDANCE_MAX_TAKES`` (default 3): past it the pair waits for
a person (``review list`` says so). A pair whose image or prompt changed since its take is made again anyway, from
the new inputs, as any outdated clip: that is a new take, not a retake.

The new seed comes from the rejected take alone, so a run that dies after the submit plans the very same request
again and resumes it instead of paying twice: the first 8 bytes of ``sha256("retake|" + fingerprint)``, modulo the
smallest seed range the prompt's providers accept, moved by one if that is the rejected request's own seed. The
clip's sidecar names the take it replaces (``retake_of``).

Cost: one listing of ``reviews/``, one batched read of the review files of the pairs asked about, and one of the
current sidecars of the pairs whose take was rejected; nothing for a catalog nobody has reviewed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field

from seedance_pipeline.core import settings
from seedance_pipeline.core.errors import BadFile
from seedance_pipeline.providers import ADAPTER_CLASSES, PROVIDERS
from seedance_pipeline.review.records import REJECTED, Decision, PairReviews
from seedance_pipeline.review.store import ReviewStore, pair_files
from seedance_pipeline.storage import layout
from seedance_pipeline.storage.resource import SeedanceStorage

Pair = tuple[str, str]  # (image, prompt)


@dataclass(frozen=True)
class Retake:
    of: str  # the rejected take's fingerprint
    number: int  # the take this one will be
    avoid_seed: int  # the rejected request's seed (-1: the provider chose it)

    def seed(self, seed_max: int) -> int:
        """The retake's seed within ``0..seed_max``, from the rejected take alone (see the module docstring)."""
        span = seed_max + 1
        seed = int.from_bytes(hashlib.sha256(f"retake|{self.of}".encode()).digest()[:8], "big") % span
        return (seed + 1) % span if seed == self.avoid_seed else seed


def seed_max(choice: str) -> int:
    """The largest seed every provider the prompt may use accepts (``auto``: any registered provider, so the seed
    does not change when another provider is configured)."""
    return min(ADAPTER_CLASSES[name].capabilities.seed_max for name in (PROVIDERS if choice == "auto" else [choice]))


@dataclass
class RetakeScan:
    retakes: dict[Pair, Retake] = field(default_factory=dict)
    waiting: dict[Pair, str] = field(default_factory=dict)  # rejected, not made again: why
    problems: list[str] = field(default_factory=list)  # review files that break a rule (left as they are)


# What a rejection calls for (after_rejection).
RETAKE, WAITS, NO_RETAKE = "retake", "waits", "none"


def waiting_reason(take: int, max_takes: int) -> str:
    return (
        f"take {take} of at most {max_takes} without a person ({settings.MAX_TAKES.name}): approve an earlier take, "
        "reject with --no-retake, edit the prompt, or raise the setting"
    )


def after_rejection(decision: Decision | None, max_takes: int) -> tuple[str, str] | None:
    """What a take's newest decision calls for, the one statement of the rule: None when it is not a rejection;
    else (``RETAKE``, text), (``WAITS``, why) past ``max_takes``, or (``NO_RETAKE``, text) for ``--no-retake``."""
    if decision is None or decision.state != REJECTED:
        return None
    if not decision.retake:
        return NO_RETAKE, "rejected with --no-retake"
    if decision.take >= max_takes:
        return WAITS, waiting_reason(decision.take, max_takes)
    return RETAKE, f"take {decision.take + 1}, a new seed, on the next run"


def scan_retakes(storage: SeedanceStorage, pairs: Iterable[Pair], max_takes: int | None = None) -> RetakeScan:
    """The retakes among ``pairs``, and the rejected pairs that wait for a person."""
    cap = max_takes if max_takes is not None else settings.MAX_TAKES.read() or 1
    scan = RetakeScan()
    wanted = set(pairs)
    reviewed = {path: pair for pair, path in pair_files(storage, layout.REVIEWS, wanted).items()} if wanted else {}
    if not reviewed:
        return scan
    store = ReviewStore(storage)
    blobs = storage.fs.cat(list(reviewed), on_error="omit")
    rejected: dict[Pair, PairReviews] = {}
    for path, (image, prompt) in reviewed.items():
        if path not in blobs:
            continue
        try:
            reviews = store.parse(path, blobs[path], prompt, image)
        except BadFile as exc:
            scan.problems.append(f"{image}|{prompt}: {exc}")
            continue
        if any(d.state == REJECTED and d.retake for d in reviews.decisions):
            rejected[(image, prompt)] = reviews
    sidecars = {storage.sidecar_path(prompt, image): (image, prompt) for image, prompt in rejected}
    current = storage.fs.cat(list(sidecars), on_error="omit") if sidecars else {}
    for path, pair in sidecars.items():
        try:
            sidecar = json.loads(current[path])
        except (KeyError, ValueError):
            continue  # no current clip: nothing to retake (a missing clip is made as any missing clip)
        decision = rejected[pair].latest(str(sidecar.get("fingerprint")))
        step = after_rejection(decision, cap)
        if decision is None or step is None or step[0] == NO_RETAKE:
            continue
        if step[0] == WAITS:
            scan.waiting[pair] = step[1]
            continue
        seed = (sidecar.get("request") or {}).get("seed", -1)
        scan.retakes[pair] = Retake(decision.fingerprint, decision.take + 1, seed if isinstance(seed, int) else -1)
    return scan
