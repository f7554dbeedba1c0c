"""Backfill exactly what changed: plan outdated (or missing) clips, forecast their cost, launch Dagster backfills.

The plan uses the same selection and preparation as the ``clips`` asset (``planning/``), so a forecast
prices exactly the requests a run would send, and a clip whose new request is already stored (a
reverted edit, a renamed prompt) is forecast at $0 and reused. One Dagster asset backfill is launched
per provider, tagged ``seedance/provider`` so the run queue can cap each provider
(``tag_concurrency_limits``); an edit to one prompt means one provider, so usually one backfill.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field

import dagster as dg

from seedance_pipeline.dagster_internals import (
    AssetGraphSubset,
    AssetKeyPartitionKey,
    PartitionBackfill,
    make_new_backfill_id,
)
from seedance_pipeline.ledger.store import TaskStore
from seedance_pipeline.lineage.names import CLIPS_KEY, PROVIDER_TAG, TRIGGER_TAG
from seedance_pipeline.lineage.partitions import IMAGES, PROMPTS, clip_partition
from seedance_pipeline.planning.prepare import iter_prepared
from seedance_pipeline.planning.reuse import StoredClips, attempts_by_fingerprint, find_reusable
from seedance_pipeline.planning.select import Mode, select
from seedance_pipeline.providers.resource import SeedanceProviders
from seedance_pipeline.storage.resource import SeedanceStorage


@dataclass(frozen=True, slots=True)
class PlannedClip:
    image: str
    prompt: str
    provider: str
    usd: float  # 0 when reused
    seconds: int
    reused: bool
    simulated: bool
    assumption: bool  # the price is an assumption (the provider publishes none)
    retake: int | None = None  # the take number, when this clip is made again because a person rejected the last

    @property
    def partition(self) -> str:
        return clip_partition(self.image, self.prompt)


@dataclass
class Plan:
    clips: list[PlannedClip] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)  # rejected takes past SEEDANCE_MAX_TAKES: why each waits

    def by_provider(self) -> dict[str, list[PlannedClip]]:
        groups: dict[str, list[PlannedClip]] = defaultdict(list)
        for clip in self.clips:
            groups[clip.provider].append(clip)
        return dict(sorted(groups.items()))

    @property
    def total_usd(self) -> float:
        return sum(c.usd for c in self.clips)

    @property
    def retakes(self) -> list[PlannedClip]:
        return [c for c in self.clips if c.retake is not None]


def targeted_keys(
    instance: dg.DagsterInstance, *, prompts: list[str] | None = None, images: list[str] | None = None
) -> list[tuple[str, str]]:
    """Every (image, prompt) partition pair, optionally narrowed to some prompts and images (targeting is
    decided by ``select``)."""
    all_images = instance.get_dynamic_partitions(IMAGES)
    all_prompts = instance.get_dynamic_partitions(PROMPTS)
    unknown = sorted(set(prompts or []) - set(all_prompts)) + sorted(set(images or []) - set(all_images))
    if unknown:
        raise dg.DagsterInvariantViolationError(f"no such partition(s): {', '.join(unknown)}")
    return [(i, p) for p in (prompts or all_prompts) for i in (images or all_images)]


def plan(
    instance: dg.DagsterInstance,
    storage: SeedanceStorage,
    providers: SeedanceProviders,
    *,
    mode: Mode,
    prompts: list[str] | None = None,
    images: list[str] | None = None,
) -> Plan:
    selection = select(instance, targeted_keys(instance, prompts=prompts, images=images), mode, storage)
    result = Plan(
        failures=list(selection.failures),
        waiting=[f"{image}|{prompt}: {why}" for (image, prompt), why in sorted(selection.waiting.items())],
    )
    store = TaskStore(storage)
    # A plan may cover the whole catalog: one listing of the clip folders and one of the fingerprints instead of
    # three lookups per clip. (A run looks each one up: it must see what a concurrent run stored meanwhile.)
    stored = StoredClips.for_items(storage, selection.items, local=True)
    known = store.fingerprints() if len(selection.items) >= StoredClips.LIST_FROM else None
    for it in iter_prepared(selection.items, storage, providers, result.failures):
        reuse = find_reusable(storage, it, attempts_by_fingerprint(store, it, known), stored)
        chosen = reuse.candidate if reuse else it.candidates[0]
        estimate = chosen.prepared.estimate
        result.clips.append(
            PlannedClip(
                image=it.image,
                prompt=it.prompt,
                provider=chosen.provider,
                usd=0.0 if reuse else estimate.usd,
                seconds=chosen.prepared.request.duration,
                reused=reuse is not None,
                simulated=chosen.simulated,
                assumption=estimate.assumption,
                retake=it.retake.number if it.retake else None,
            )
        )
        it.candidates = []  # priced: a plan of the whole catalog keeps no prepared request per clip
    return result


def format_plan(result: Plan, *, list_clips: bool = True) -> str:
    lines = []
    if list_clips and result.clips:
        lines += [f"{'clip':<34} {'provider':<10} {'sec':>3} {'est $':>9}", "-" * 60]
        for c in sorted(result.clips, key=lambda c: c.partition):
            note = "  reused: same request already stored" if c.reused else ""
            note += f"  retake: take {c.retake}, a new seed" if c.retake is not None else ""
            lines.append(
                f"{c.partition:<34} {c.provider + ('*' if c.simulated else ''):<10} {c.seconds:>3} {c.usd:>9.4f}{note}"
            )
        lines.append("")
    lines += [f"{'provider':<12} {'clips':>6} {'reused':>6} {'seconds':>8} {'USD':>10}", "-" * 46]
    for provider, group in result.by_provider().items():
        flag = " (price assumed)" if any(c.assumption and not c.reused for c in group) else ""
        lines.append(
            f"{provider:<12} {len(group):>6} {sum(c.reused for c in group):>6} "
            f"{sum(c.seconds for c in group if not c.reused):>8} {sum(c.usd for c in group):>10.4f}{flag}"
        )
    lines.append(
        f"{'total':<12} {len(result.clips):>6} {sum(c.reused for c in result.clips):>6} "
        f"{sum(c.seconds for c in result.clips if not c.reused):>8} {result.total_usd:>10.4f}"
    )
    if result.retakes:
        lines.append(
            f"of which retakes of rejected takes: {len(result.retakes)} clip(s), "
            f"{sum(c.usd for c in result.retakes):.4f} USD"
        )
    if any(c.simulated for c in result.clips):
        lines.append(
            "* simulated: these providers go to the built-in simulator (no API key or base URL set); nothing is billed"
        )
    for failure in result.failures:
        lines.append(f"cannot be made: {failure}")
    for line in result.waiting:
        lines.append(f"waits for a person: {line}")
    return "\n".join(lines)


def asset_graph_subset(defs_or_graph, partitions: list[str]) -> AssetGraphSubset:
    graph = defs_or_graph.resolve_asset_graph() if isinstance(defs_or_graph, dg.Definitions) else defs_or_graph
    return AssetGraphSubset.from_asset_partition_set({AssetKeyPartitionKey(CLIPS_KEY, p) for p in partitions}, graph)


def backfill_tags(provider: str, trigger: str) -> dict[str, str]:
    return {PROVIDER_TAG: provider, TRIGGER_TAG: trigger}


def launch(
    instance: dg.DagsterInstance,
    defs: dg.Definitions,
    result: Plan,
    *,
    trigger: str = "backfill-cli",
    title: str = "seedance clips",
) -> list[tuple[str, str, int]]:
    """One asset backfill per provider of exactly the planned partitions; returns (provider, backfill id, clips)."""
    launched = []
    for provider, group in result.by_provider().items():
        partitions = sorted(c.partition for c in group)
        backfill_id = make_new_backfill_id()
        instance.add_backfill(
            PartitionBackfill.from_asset_graph_subset(
                backfill_id=backfill_id,
                backfill_timestamp=time.time(),
                tags=backfill_tags(provider, trigger),
                dynamic_partitions_store=instance,
                asset_graph_subset=asset_graph_subset(defs, partitions),
                title=f"{title}: {len(partitions)} clip(s) on {provider}",
                description=f"{len(partitions)} clip(s), forecast ${sum(c.usd for c in group):.4f}",
                run_config=None,
            )
        )
        launched.append((provider, backfill_id, len(partitions)))
    return launched
