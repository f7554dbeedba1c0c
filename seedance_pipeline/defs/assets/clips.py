"""``clips``: one MP4 per (image, prompt) the prompt targets, from whichever provider it names.

A run may cover many partitions. Everything that can fail before spending is checked first, for
every partition; then the clips are produced concurrently (each provider's in-flight cap applies)
and each one is recorded the moment it is stored, so a run that fails half-way keeps every clip it
paid for. Per partition, in order: reuse a stored, checked clip made from the same request
fingerprint (no request at all), resume an attempt a previous run left at the provider (poll, never
resubmit), refuse an attempt whose acceptance is unknown, else submit once within the budgets; with
``provider: auto`` fail over to the next cheapest provider only if the previous one never accepted.
"""

import functools
import time

import dagster as dg

from seedance_pipeline.defs.preview import accepting
from seedance_pipeline.ledger.budget import SpendGuard, SpendPolicy
from seedance_pipeline.ledger.store import TaskStore
from seedance_pipeline.lineage.names import (
    CLIPS_CODE_VERSION,
    CLIPS_GROUP,
    CLIPS_KEY,
    CLIPS_POOL,
    IMAGES_KEY,
    OWNERS,
    PROMPTS_KEY,
)
from seedance_pipeline.lineage.partitions import clip_partitions, split_key
from seedance_pipeline.planning.prepare import prepare_items
from seedance_pipeline.planning.select import Mode, select
from seedance_pipeline.production.bridge import in_background
from seedance_pipeline.production.collect import collect_items
from seedance_pipeline.production.messages import Failed, Log
from seedance_pipeline.production.produce import produce_all
from seedance_pipeline.providers.resource import SeedanceProviders
from seedance_pipeline.storage.resource import SeedanceStorage


class ClipsConfig(dg.Config):
    """Which targeted partitions of the run to produce (``planning/select.py`` says what each mode selects),
    and within what budget."""

    mode: Mode = "all"
    # Attempt ids whose tasks a dead run left at the provider: collect their outputs, never resubmit
    # (the pending-tasks sensor sets this).
    collect: list[str] = []
    # This run's spend limit in USD; None: the configured per-run budget (SEEDANCE_BUDGET_PER_RUN_USD).
    budget_usd: float | None = None
    # Clip partitions ("image|prompt") this run leaves as they are: `run` passes those whose task a provider was
    # just found to have lost, so a person sees the loss before anything is paid for again.
    leave: list[str] = []


def produce_clips(
    context: dg.AssetExecutionContext,
    config: ClipsConfig,
    storage: SeedanceStorage,
    providers: SeedanceProviders,
    spend: SpendPolicy,
):
    started = time.monotonic()
    keys = [split_key(k) for k in context.partition_keys]
    store = TaskStore(storage)
    if config.collect:
        ready, failures = collect_items(context.instance, context.log.info, config.collect, store, keys), []
    else:
        left = {tuple(key.split("|", 1)) for key in config.leave}
        selection = select(context.instance, [k for k in keys if k not in left], config.mode, storage)
        failures = selection.failures
        context.log.info(
            f"{len(keys)} partitions in this run: {len(selection.items)} to produce, "
            f"{selection.untargeted} not targeted by their prompt, {selection.left_alone} left as they "
            f"are (mode {config.mode})"
        )
        ready = prepare_items(selection.items, storage, providers, failures)
        for it in ready:
            for warning in it.candidates[0].prepared.warnings:
                context.log.warning(f"{it.where}: {warning}")
    guard = SpendGuard(
        store,
        per_run_usd=config.budget_usd if config.budget_usd is not None else spend.per_run_usd,
        per_day_usd=spend.per_day_usd,
        run_id=context.run.run_id,
    )
    production = functools.partial(produce_all, ready, providers, storage, store, guard, context.run.run_id)
    stored = 0
    # Produced on a thread of its own (production/bridge.py): Dagster writes each event yielded here while
    # the other clips' requests go on.
    with in_background(production, name=f"seedance-clips-{context.run.run_id[:8]}") as received:
        for message in received:
            if isinstance(message, Log):
                getattr(context.log, message.level)(message.text)
            elif isinstance(message, Failed):
                failures.append(message.message)
                context.log.error(message.message)
                yield from message.events
            else:
                stored += 1
                yield from message.events
    context.log.info(f"clips run done in {time.monotonic() - started:.1f} s: {stored} stored, {len(failures)} failed")
    if failures:
        raise dg.Failure(
            description=f"{len(failures)} clip(s) failed; every other clip of this run was stored and recorded:\n"
            + "\n".join(f"- {f}" for f in failures),
            allow_retries=False,
        )


# MultiToSingleDimensionPartitionMapping and backfill_policy are Dagster beta features (README: "Dagster features
# we rely on").
with accepting(dg.BetaWarning):
    clips = dg.asset(
        key=CLIPS_KEY,
        partitions_def=clip_partitions,
        output_required=False,
        code_version=CLIPS_CODE_VERSION,
        group_name=CLIPS_GROUP,
        owners=OWNERS,
        kinds={"video", "mp4"},
        deps=[
            dg.AssetDep(IMAGES_KEY, partition_mapping=dg.MultiToSingleDimensionPartitionMapping("image")),
            dg.AssetDep(PROMPTS_KEY, partition_mapping=dg.MultiToSingleDimensionPartitionMapping("prompt")),
        ],
        backfill_policy=dg.BackfillPolicy.single_run(),
        # Per-provider caps are run tags + in-run caps, since a pool is per op, not per provider.
        pool=CLIPS_POOL,
        description="Seedance 1.5 Pro image-to-video clips, one per (image, prompt) the prompt targets, stored at "
        "clips/<prompt>/<image>.mp4 with a JSON sidecar. The request fingerprint (image bytes + request "
        "+ provider + model) is never paid for twice.",
    )(produce_clips)
