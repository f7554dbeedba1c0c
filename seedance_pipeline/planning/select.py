"""Which clip partitions to produce: the pairs a run covers, narrowed by what the prompts target and a mode.

Shared by the ``clips`` asset (to produce), ``forecast`` and ``backfill`` (to price and launch), so a forecast
prices exactly what a run would send. Nothing here talks to a provider.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, get_args

import dagster as dg

from seedance_pipeline.clip.prepare import PreparedRequest
from seedance_pipeline.ledger.records import AttemptRecord
from seedance_pipeline.lineage import versions
from seedance_pipeline.lineage.names import CLIPS_CODE_VERSION, CLIPS_KEY, IMAGES_KEY, PROMPTS_KEY
from seedance_pipeline.lineage.partitions import clip_key, clip_partition
from seedance_pipeline.planning.prompt_spec import PromptSpec
from seedance_pipeline.planning.retakes import Pair, scan_retakes
from seedance_pipeline.planning.retakes import Retake as Retake
from seedance_pipeline.planning.specs import load_specs
from seedance_pipeline.storage.resource import SeedanceStorage

# ``all``: every targeted pair (an explicit materialization or backfill; unchanged requests are reused for free).
# ``missing_or_stale``: never made, or made from other inputs or code (``seedance-pipeline run``).
# ``missing``: never made (the storage sensor: it never regenerates outdated clips by itself).
# ``stale``: made from other inputs or code.
Mode = Literal["all", "missing_or_stale", "missing", "stale"]
MODES: tuple[Mode, ...] = get_args(Mode)


@dataclass(frozen=True)
class Candidate:
    prepared: PreparedRequest
    simulated: bool

    @property
    def provider(self) -> str:
        return self.prepared.provider


@dataclass(slots=True)
class Item:
    """One clip partition to produce (slots: a plan of the whole catalog holds 100,000 of them)."""

    image: str
    prompt: str
    spec: PromptSpec | None
    inputs: dict[dg.AssetKey, versions.Version]
    # Cheapest first. One unless the prompt says ``provider: auto``: then every configured provider that
    # accepts the request, and the next is tried only when the previous one never accepted the task.
    candidates: list[Candidate] = field(default_factory=list)
    record: AttemptRecord | None = None  # an attempt a dead run left at the provider, to collect
    retake: Retake | None = None  # made again with a new seed: a person rejected the current take

    @property
    def partition(self) -> dg.MultiPartitionKey:
        return clip_key(self.image, self.prompt)

    @property
    def where(self) -> str:
        return f"{self.image}|{self.prompt}"


@dataclass
class Selection:
    items: list[Item]
    failures: list[str]
    untargeted: int = 0
    left_alone: int = 0  # already made (and, for the stale modes, made from the current inputs)
    waiting: dict[Pair, str] = field(default_factory=dict)  # rejected takes not made again: why

    @property
    def retakes(self) -> int:
        return sum(it.retake is not None for it in self.items)


def select(
    instance: dg.DagsterInstance, keys: list[Pair], mode: Mode, storage: SeedanceStorage | None = None
) -> Selection:
    """The pairs among ``keys`` that ``mode`` asks to produce, with the input versions they will be made from.

    ``all``: every targeted pair. ``missing``: never made. ``stale``: made, but from other inputs or code
    (an edited prompt, a replaced image). ``missing_or_stale``: both. Pairs a prompt does not target are
    never selected. With ``storage``, the pairs whose current take a person rejected (``planning/retakes.py``) are
    selected whatever the mode, as retakes, while their inputs are those the take was made from.
    """
    scan = scan_retakes(storage, keys) if storage is not None else None
    retakes = scan.retakes if scan else {}
    images = {i for i, _ in keys}
    prompt_keys = {p for _, p in keys}
    image_versions = versions.latest_versions(instance, IMAGES_KEY, images)
    prompt_versions = versions.latest_versions(instance, PROMPTS_KEY, prompt_keys)
    specs = load_specs(instance, prompt_keys)
    recorded = {}
    if mode != "all" or retakes:
        wanted = [clip_partition(i, p) for i, p in keys] if mode != "all" else [clip_partition(*k) for k in retakes]
        # Past a few thousand keys one unfiltered query beats an IN clause of every key.
        recorded = versions.latest_versions(instance, CLIPS_KEY, wanted if len(wanted) <= 2000 else None)
    selection = Selection(items=[], failures=list(scan.problems) if scan else [], waiting=scan.waiting if scan else {})
    for image, prompt in keys:
        spec = specs.get(prompt)
        if spec is None or prompt not in prompt_versions:
            selection.failures.append(
                f"{image}|{prompt}: prompt {prompt!r} has no valid materialization; materialize prompts first"
            )
            continue
        if not spec.targets(image):
            selection.untargeted += 1
            continue
        if image not in image_versions:
            selection.failures.append(
                f"{image}|{prompt}: image {image!r} is not materialized; materialize source_images first"
            )
            continue
        inputs = {IMAGES_KEY: image_versions[image], PROMPTS_KEY: prompt_versions[prompt]}
        previous = recorded.get(clip_partition(image, prompt))
        stale = previous is not None and versions.is_stale(previous, inputs, CLIPS_CODE_VERSION)
        selected_by = {
            "all": True,
            "missing": previous is None,
            "stale": stale,
            "missing_or_stale": previous is None or stale,
        }
        retake = retakes.get((image, prompt)) if previous is not None and not stale else None
        if not selected_by[mode] and retake is None:
            selection.left_alone += 1
            continue
        selection.items.append(Item(image, prompt, spec, inputs, retake=retake))
    return selection
