"""``seedance-pipeline run``: bring storage, partitions and clips up to date without the daemon.

Registers partitions exactly as the storage sensor would (same ``plan_refresh``), records the changed images
as the ``source_images`` asset would but without a run, in batches (``register_images``), then materializes the
changed prompts, every missing or outdated clip the prompts target, and today's cost report, each as an in-process
run of the code location's asset job on the configured Dagster instance, so the history shows in the UI. Each run
covers only the partitions it produces (``planning/cover.py``), and a step with nothing to do launches no run: an
unchanged day costs a listing and a few queries.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

import dagster as dg

from seedance_pipeline.cli.progress import Progress
from seedance_pipeline.cli.run_report import RunReport, clip_rows, failure_lines
from seedance_pipeline.definitions import build_definitions
from seedance_pipeline.defs.assets.reports import REVIEWS_DIGEST
from seedance_pipeline.event_logs import ask_for_batches
from seedance_pipeline.event_logs.instance_config import ensure_instance_config
from seedance_pipeline.ledger import states
from seedance_pipeline.ledger.budget import SpendPolicy
from seedance_pipeline.ledger.liveness import Orphans, retention_warning
from seedance_pipeline.ledger.report import LEDGER_DIGEST
from seedance_pipeline.ledger.states import AttemptState
from seedance_pipeline.ledger.store import TaskStore
from seedance_pipeline.lineage.names import (
    CLIPS_JOB,
    CLIPS_KEY,
    COST_REPORT_JOB,
    COST_REPORT_KEY,
    GALLERIES_JOB,
    PROMPTS_JOB,
    SELECTS_JOB,
)
from seedance_pipeline.lineage.partitions import clip_partition, clip_range_tags, range_tags, today_utc
from seedance_pipeline.lineage.reported import report_materializations
from seedance_pipeline.planning.cover import Rectangle, rectangles, span
from seedance_pipeline.planning.refresh import RefreshPlan, apply, plan_refresh, retired_lines
from seedance_pipeline.planning.registration import ImageRegistration
from seedance_pipeline.planning.select import select
from seedance_pipeline.production.settle import settle_unknowns
from seedance_pipeline.providers.resource import SeedanceProviders
from seedance_pipeline.review.selects import out_of_step
from seedance_pipeline.review.store import ReviewStore
from seedance_pipeline.storage import layout
from seedance_pipeline.storage.resource import SeedanceStorage, StoredFile

DEFAULT_DAGSTER_HOME = Path(".seedance") / "dagster_home"


def dagster_instance() -> dg.DagsterInstance:
    """The configured instance ($DAGSTER_HOME), else the project's own under .seedance/. The runs of this process
    store their planned events in batches (``event_logs.ask_for_batches``), whichever event log the instance uses."""
    ask_for_batches()
    if not os.environ.get("DAGSTER_HOME"):
        home = DEFAULT_DAGSTER_HOME.resolve()
        ensure_instance_config(home)
        os.environ["DAGSTER_HOME"] = str(home)
    return dg.DagsterInstance.get()


class Executor:
    """Runs the code location's jobs in-process on ``instance`` and collects what failed, for the CLI."""

    def __init__(
        self,
        instance: dg.DagsterInstance,
        defs: dg.Definitions,
        report: RunReport,
        log_level: str,
        progress: Progress | None = None,
    ):
        self.instance, self.defs, self.report, self.log_level = instance, defs, report, log_level
        self.progress = progress

    def __call__(
        self, step: str, job_name: str, run_config: dict | None = None, expect: int | None = None, **kw
    ) -> dg.ExecuteInProcessResult:
        """Run ``job_name`` as ``step``; ``expect``: how many clips it should store (a terminal shows the count)."""
        config = {**(run_config or {}), "loggers": {"console": {"config": {"log_level": self.log_level}}}}
        with self.shown(step, expect):
            result = self.defs.resolve_job_def(job_name).execute_in_process(
                instance=self.instance, raise_on_error=False, run_config=config, **kw
            )
        self.report.runs[step] = result.run_id
        if not result.success:
            self.report.failures.extend(failure_lines(self.instance, result.run_id, step))
        return result

    def shown(self, step: str, expect: int | None = None) -> AbstractContextManager:
        if self.progress is None:
            return nullcontext()
        if expect is None or not self.progress.live:
            return self.progress.step(step)
        after = self.instance.event_log_storage.get_maximum_record_id() or 0

        def stored() -> int:  # clips stored since the step began: one query every half second, on a terminal only
            records_filter = dg.AssetRecordsFilter(asset_key=CLIPS_KEY, after_storage_id=after)
            return len(self.instance.fetch_materializations(records_filter, limit=expect).records)

        return self.progress.step(step, total=expect, count=stored)


def refresh_sources(instance: dg.DagsterInstance, storage: SeedanceStorage, execute: Executor):
    """Register new files as partitions and record the changed sources, as the storage sensor would (the images
    without a run: ``register_images``)."""
    plan = plan_refresh(instance, storage)
    execute.report.ignored = [f"{r.name}: {r.reason}" for r in plan.rejected]
    execute.report.retired = retired_lines(plan)
    apply(instance, plan)
    if plan.changed_images:
        with execute.shown("source_images"):
            register_images(instance, storage, [plan.image_files[k] for k in plan.changed_images], execute.report)
    if plan.changed_prompts:
        execute(
            "prompts",
            PROMPTS_JOB,
            tags=range_tags(*span(plan.prompts, plan.changed_prompts)),
            run_config={"ops": {"prompts": {"config": {"only_changed": True}}}},
        )
    return plan


def register_images(
    instance: dg.DagsterInstance, storage: SeedanceStorage, files: list[StoredFile], report: RunReport
) -> None:
    """The images as the ``source_images`` asset records them, reported without a run in batches (a run stores two
    events an image, one at a time: 20,000 images took 102 s that way, benchmarks/README.md M12)."""
    registration = ImageRegistration(storage)
    report_materializations(instance, registration.materializations(files))
    registration.record()
    report.failures.extend(f"source_images: {failure}" for failure in registration.failures)


def collect_orphans(
    instance: dg.DagsterInstance, storage: SeedanceStorage, execute: Executor, plan: RefreshPlan
) -> list[str]:
    """Tasks a dead run left at a provider, collected (polled and downloaded, never submitted) before anything new
    is planned: a provider forgets a finished task after a while (RunPod: 30 minutes), and then it is lost.
    Returns the clip partitions whose task turned out lost: this run leaves them be."""
    store = TaskStore(storage)
    now = time.time()
    orphans: dict[tuple[str, str], list[str]] = {}  # (image, prompt) -> attempt ids
    images, prompts = set(plan.images), set(plan.prompts)
    dead = Orphans(instance)
    for record in store.confirmed_open(lambda r: r.state in states.COLLECTABLE and bool(r.task_id) and dead(r)):
        if record.image in images and record.prompt in prompts:
            orphans.setdefault((record.image, record.prompt), []).append(record.attempt_id)
        else:
            execute.report.notes.append(
                f"attempt {record.attempt_id} ({record.image}|{record.prompt} on {record.provider}) cannot be "
                "collected while its image or prompt file is gone: restore it, and the next run collects the task"
            )
        if warning := retention_warning(record, now):
            execute.report.notes.append(warning)
    clips_runs(
        execute,
        "collect",
        rectangles(orphans, plan.images, plan.prompts),
        lambda rect: {"collect": [a for pair in rect.pairs for a in orphans[pair]]},
    )
    collected = [store.load(attempt_id) for ids in orphans.values() for attempt_id in ids]
    return [f"{r.image}|{r.prompt}" for r in collected if r.state is AttemptState.LOST]


def rectangle_runs(
    execute: Executor, step: str, job: str, op: str, rects: list[Rectangle], config: Callable[[Rectangle], dict]
) -> list[str]:
    """One run of ``job`` per rectangle of clip partitions (``planning/cover.py``), named ``step``, ``step 2``, ...,
    with ``config(rect)`` for its op ``op``: their run ids. A clips run expects to store its rectangle's pairs."""
    return [
        execute(
            step if n == 0 else f"{step} {n + 1}",
            job,
            tags=clip_range_tags(list(rect.images), list(rect.prompts)),
            run_config={"ops": {op: {"config": config(rect)}}},
            expect=len(rect.pairs) if job == CLIPS_JOB else None,
        ).run_id
        for n, rect in enumerate(rects)
    ]


def clips_runs(execute: Executor, step: str, rects: list[Rectangle], config: Callable[[Rectangle], dict]) -> list[str]:
    return rectangle_runs(execute, step, CLIPS_JOB, "clips", rects, config)


def produce_wanted(
    instance: dg.DagsterInstance, storage: SeedanceStorage, execute: Executor, plan: RefreshPlan, lost: list[str]
) -> None:
    """Every missing or outdated clip the prompts target, and every retake of a rejected take, in runs over just
    those partitions (``planning/cover.py``), and no run at all when none is wanted: a day with nothing to do
    writes nothing to Dagster's event log."""
    leave = set(lost)
    selection = select(
        instance,
        [(i, p) for p in plan.prompts for i in plan.images if clip_partition(i, p) not in leave],
        "missing_or_stale",
        storage,
    )
    failures = [f"clips: {line}" for line in selection.failures]
    wanted = ((item.image, item.prompt) for item in selection.items)
    rects = rectangles(wanted, plan.images, plan.prompts)
    for run_id in clips_runs(execute, "clips", rects, lambda _: {"mode": "missing_or_stale", "leave": lost}):
        execute.report.clips += clip_rows(instance, run_id)
    # A run over a rectangle around its clips selects again, and finds the same pairs lacking a source.
    execute.report.failures += [line for line in failures if line not in execute.report.failures]
    execute.report.clips.sort(key=lambda r: r.clip)


def refresh_selects(execute: Executor, pairs: list[tuple[str, str]], plan: RefreshPlan | None = None) -> None:
    """The ``selects`` of these pairs, brought in step with their reviews (runs over just those partitions)."""
    images = plan.images if plan else sorted({i for i, _ in pairs})
    prompts = plan.prompts if plan else sorted({p for _, p in pairs})
    rects = rectangles(pairs, images, prompts)
    rectangle_runs(execute, "selects", SELECTS_JOB, "selects", rects, lambda _: {"only_changed": True})


def refresh_galleries(execute: Executor, order: list[str], prompts: set[str]) -> None:
    """The review contact sheets of these prompts, built again: one run over the span of them in partition order
    ``order`` (none when there are none)."""
    if prompts:
        execute("galleries", GALLERIES_JOB, tags=range_tags(*span(order, prompts)))


def run_pipeline(
    instance: dg.DagsterInstance,
    storage: SeedanceStorage,
    providers: SeedanceProviders,
    *,
    log_level: str = "CRITICAL",
    spend: SpendPolicy | None = None,
    progress: Progress | None = None,
) -> RunReport:
    defs = build_definitions(storage, providers, spend)
    report = RunReport()
    execute = Executor(instance, defs, report, log_level, progress)
    plan = refresh_sources(instance, storage, execute)
    report.settled = settle_unknowns(TaskStore(storage), providers, instance).lines()
    lost = collect_orphans(instance, storage, execute, plan)
    produce_wanted(instance, storage, execute, plan, lost)
    images, prompts = set(plan.images), set(plan.prompts)
    decided = [(i, p) for i, p in out_of_step(storage) if i in images and p in prompts]
    refresh_selects(execute, decided, plan)
    # On local storage the galleries of prompts with new takes are built again (posters read the new clips from
    # disk). On an object store they are not: reading every new take's MP4 back for its poster would undo the
    # one-read design, and the page carries presigned URLs that `run` must not write by itself.
    stored = {r.clip.split("|", 1)[1] for r in report.clips} if storage.is_local else set()
    refresh_galleries(execute, plan.prompts, stored | {p for _, p in decided})
    day = today_utc()
    if not report_is_current(instance, storage, day):
        execute("cost_report", COST_REPORT_JOB, partition_key=day)
    report.cost_report = storage.ref(storage.path(layout.report(day, "md")))
    return report


def report_is_current(instance: dg.DagsterInstance, storage: SeedanceStorage, day: str) -> bool:
    """Whether the stored report of ``day`` was built from the attempt records as they are (no run needed)."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=COST_REPORT_KEY, asset_partitions=[day]), limit=1
    ).records
    mat = records[0].asset_materialization if records else None
    built_from = mat.metadata.get(LEDGER_DIGEST) if mat else None
    reviews_read = mat.metadata.get(REVIEWS_DIGEST) if mat else None
    return (
        built_from is not None
        and built_from.value == TaskStore(storage).day_digest(day)
        and reviews_read is not None
        and reviews_read.value == ReviewStore(storage).rejected()[1]
        and storage.exists(storage.path(layout.report(day, "md")))
        and storage.exists(storage.path(layout.report(day, "parquet")))
    )
