"""Write-ahead records of every provider attempt, kept in storage next to the clips.

One JSON object per attempt, written by that attempt's process only (so many writers never collide):

    tasks/days/<YYYY-MM-DD>/<attempt_id>.json     the record; the day is the attempt's UTC start
    tasks/by-fingerprint/<fingerprint>/<attempt_id>   empty marker: find attempts for a request
    tasks/open/<attempt_id>.json                  copy of the record while it needs attention
                                                  (intent, accepted, unknown, download_failed)

The intent is durable before the submit POST leaves, the task id the moment the provider answers,
the outcome when done. A crash at any point leaves a record that says exactly what is known.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from dagster import DagsterRunStatus
from pydantic import BaseModel

from seedance_pipeline.clip.generate import ClipResult
from seedance_pipeline.clip.prepare import PreparedRequest
from seedance_pipeline.core.errors import (
    AcceptanceUnknown,
    DownloadFailed,
    OverBudget,
    ProviderUnavailable,
    SubmitRejected,
    TaskFailed,
)
from seedance_pipeline.owner import current_owner, owner_alive
from seedance_pipeline.providers.states import TaskSnapshot
from seedance_pipeline.storage.resource import SeedanceStorage, file_stamp

if TYPE_CHECKING:
    from seedance_pipeline.budget import SpendGuard

log = logging.getLogger(__name__)

State = Literal[
    "intent",
    "accepted",
    "succeeded",
    "failed",
    "rejected",
    "unknown",
    "download_failed",
    "reused",
    "abandoned",
    "blocked",
]
OPEN_STATES = frozenset({"intent", "accepted", "unknown", "download_failed"})


class AttemptRecord(BaseModel):
    attempt_id: str
    fingerprint: str
    image: str
    prompt: str
    provider: str
    state: State
    simulated: bool = False
    run_id: str | None = None
    owner: str | None = None  # host:pid:start of the process working on it (owner.py)
    task_id: str | None = None
    poll_url: str | None = None
    request: dict[str, Any]
    estimated_cost_usd: float
    estimate_is_assumption: bool = False
    reported_cost_usd: float | None = None
    created_at: float
    updated_at: float
    output: str | None = None
    source_url: str | None = None
    error: str | None = None
    moderation: bool = False

    @property
    def day(self) -> str:
        return self.attempt_id[:10]


def new_attempt_id(now: float | None = None) -> str:
    stamp = datetime.fromtimestamp(now or time.time(), tz=UTC)
    return f"{stamp:%Y-%m-%d}T{stamp:%H%M%S}Z-{uuid.uuid4().hex[:10]}"


class TaskStore:
    def __init__(self, storage: SeedanceStorage):
        self.storage = storage

    def _record_path(self, attempt_id: str) -> str:
        return self.storage.path("tasks", "days", attempt_id[:10], f"{attempt_id}.json")

    def _open_path(self, attempt_id: str) -> str:
        return self.storage.path("tasks", "open", f"{attempt_id}.json")

    def _marker_path(self, fingerprint: str, attempt_id: str) -> str:
        return self.storage.path("tasks", "by-fingerprint", fingerprint, attempt_id)

    def save(self, record: AttemptRecord) -> AttemptRecord:
        """Write the record (as owned by this process) and keep tasks/open/ in step with its state."""
        record = record.model_copy(update={"updated_at": time.time(), "owner": current_owner()})
        data = record.model_dump_json(indent=1).encode()
        open_path = self._open_path(record.attempt_id)
        if record.state in OPEN_STATES:
            # The open copy first: a record that needs attention is never missing from tasks/open/ (what
            # `tasks list` and the pending-tasks sensor read), whichever of the two writes fails.
            self.storage.write_bytes(open_path, data)
            self.storage.write_bytes(self._record_path(record.attempt_id), data)
        else:
            self.storage.write_bytes(self._record_path(record.attempt_id), data)
            if self.storage.fs.exists(open_path):
                self.storage.fs.rm(open_path)
        return record

    def create(
        self,
        prepared: PreparedRequest,
        *,
        image: str,
        prompt: str,
        run_id: str | None,
        simulated: bool,
        state: State = "intent",
        **fields: Any,
    ) -> AttemptRecord:
        now = time.time()
        record = AttemptRecord(
            attempt_id=new_attempt_id(now),
            fingerprint=prepared.fingerprint,
            image=image,
            prompt=prompt,
            provider=prepared.provider,
            state=state,
            simulated=simulated,
            run_id=run_id,
            request=prepared.describe(),
            estimated_cost_usd=prepared.estimate.usd,
            estimate_is_assumption=prepared.estimate.assumption,
            created_at=now,
            updated_at=now,
            **fields,
        )
        self.storage.write_bytes(self._marker_path(record.fingerprint, record.attempt_id), b"")
        try:
            return self.save(record)
        except OSError:
            # Nothing was sent (the caller submits only after this returns): an open copy written before the
            # record's write failed would list an attempt that does not exist. Best effort; a marker without
            # its record is skipped when read.
            with contextlib.suppress(OSError):
                self.storage.fs.rm(self._open_path(record.attempt_id))
            raise

    def load(self, attempt_id: str) -> AttemptRecord:
        record = AttemptRecord.model_validate_json(self.storage.read_bytes(self._record_path(attempt_id)))
        return self._newest([record])[0]

    def _load_many(self, paths: list[str]) -> list[AttemptRecord]:
        return list(self._read_many(paths).values())

    def _read_many(self, paths: list[str]) -> dict[str, AttemptRecord]:
        """Path -> record for the paths that could be read, in the order asked."""
        if not paths:
            return {}
        # One batched call (concurrent on object stores). A marker whose record is missing is an intent
        # whose write failed before anything was sent: skipped, not an error that blocks the clip forever.
        blobs = self.storage.fs.cat(paths, on_error="omit")
        return {p: AttemptRecord.model_validate_json(blobs[p]) for p in paths if p in blobs}

    def _newest(self, records: list[AttemptRecord]) -> list[AttemptRecord]:
        """Records still saying ``intent`` replaced by their open copy where that is newer: ``save`` writes the
        open copy first, so when the record's write of the task id failed and the process then died, the
        open copy is the one that knows the task (collected by polling, not left as acceptance unknown)."""
        intents = [r for r in records if r.state == "intent"]
        if not intents:
            return records
        blobs = self.storage.fs.cat([self._open_path(r.attempt_id) for r in intents], on_error="omit")
        copies = {c.attempt_id: c for c in map(AttemptRecord.model_validate_json, blobs.values())}
        return [
            copies[r.attempt_id] if r.attempt_id in copies and copies[r.attempt_id].updated_at > r.updated_at else r
            for r in records
        ]

    def open_records(self) -> list[AttemptRecord]:
        try:
            paths = sorted(self.storage.fs.find(self.storage.path("tasks", "open")))
        except FileNotFoundError:
            return []
        return self._load_many([p for p in paths if p.endswith(".json")])

    def day_records(self, day: str) -> list[AttemptRecord]:
        try:
            paths = sorted(self.storage.fs.find(self.storage.path("tasks", "days", day)))
        except FileNotFoundError:
            return []
        return self._load_many([p for p in paths if p.endswith(".json")])

    def day_records_cached(self, day: str, cache: dict[str, tuple[str, AttemptRecord]]) -> list[AttemptRecord]:
        """``day_records``, re-reading only the files whose size or mtime/ETag changed since ``cache`` saw them."""
        try:
            listing = self.storage.fs.find(self.storage.path("tasks", "days", day), detail=True)
        except FileNotFoundError:
            return []
        stamps = {p: file_stamp(info) for p, info in listing.items() if p.endswith(".json")}
        stale = [p for p, stamp in stamps.items() if p not in cache or cache[p][0] != stamp]
        for path, record in self._read_many(stale).items():
            cache[path] = (stamps[path], record)
        return [cache[p][1] for p in stamps if p in cache]

    def for_fingerprint(self, fingerprint: str) -> list[AttemptRecord]:
        try:
            markers = self.storage.fs.ls(self.storage.path("tasks", "by-fingerprint", fingerprint), detail=False)
        except FileNotFoundError:
            return []
        ids = sorted(m.rsplit("/", 1)[-1] for m in markers)
        return self._newest(self._load_many([self._record_path(i) for i in ids]))


class AttemptJournal:
    """The ``generation.Journal`` for one clip partition: writes each step before moving on (only the task
    id's write may fail without stopping the clip: the id is kept and recorded with the outcome)."""

    def __init__(
        self,
        store: TaskStore,
        *,
        image: str,
        prompt: str,
        run_id: str | None,
        simulated: bool,
        record: AttemptRecord | None = None,
        guard: SpendGuard | None = None,
    ):
        self.store, self.image, self.prompt, self.run_id, self.simulated = store, image, prompt, run_id, simulated
        self.record = record  # set when resuming an existing attempt
        self.guard = guard

    def intent(self, prepared: PreparedRequest) -> None:
        """Durable before the submit POST; it is also the budget reservation (``OverBudget`` stops the submit)."""
        # Under a budget, one reservation at a time per run: each intent's check sees every earlier intent
        # of the run, and none that is still being written.
        limited = self.guard is not None and self.guard.limited
        with self.guard.lock if limited else contextlib.nullcontext():
            self.record = self.store.create(
                prepared, image=self.image, prompt=self.prompt, run_id=self.run_id, simulated=self.simulated
            )
            if self.guard is not None:
                self.guard.admit(self.record)

    def accepted(self, prepared: PreparedRequest, snapshot: TaskSnapshot) -> None:
        assert self.record is not None
        record = self.record.model_copy(
            update={
                "state": "accepted",
                "task_id": snapshot.task_id,
                "poll_url": snapshot.poll_url,
                "reported_cost_usd": snapshot.reported_cost_usd,
            }
        )
        try:
            self.record = self.store.save(record)
        except OSError as exc:
            # The provider has the task and we hold its id: go on with it rather than lose it. The outcome's
            # write records the id. Until then readers find it in the open copy if that write got through
            # (``_newest``), else the record says "intent", which is never resubmitted.
            self.record = record
            log.warning(
                "attempt %s: recording task %s failed (%s: %s); continuing, the outcome will record it",
                record.attempt_id,
                snapshot.task_id,
                type(exc).__name__,
                exc,
            )

    def finished(self, prepared: PreparedRequest, result: ClipResult | None, error: Exception | None) -> None:
        if self.record is None:  # failed before the intent was written: nothing was sent
            return
        update: dict[str, Any] = {"run_id": self.run_id}
        if result is not None:
            update.update(
                state="succeeded",
                output=result.output,
                source_url=result.source_url,
                reported_cost_usd=result.reported_cost_usd,
                task_id=result.task_id,
                error=None,
            )
        else:
            state = _state_for(error, accepted=self.record.state != "intent")
            update.update(state=state, error=str(error), moderation=bool(getattr(error, "moderation", False)))
        self.record = self.store.save(self.record.model_copy(update=update))
        if self.guard is not None and self.record.state in ("rejected", "blocked"):
            self.guard.release(self.record)


def orphaned(record: AttemptRecord, instance) -> bool:
    """No live process is working on this attempt: its owner died, or (owner on another host) its run ended."""
    alive = owner_alive(record.owner)
    if alive is not None:
        return not alive
    run = instance.get_run_by_id(record.run_id) if record.run_id else None
    return run is None or run.status in (DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED)


def _state_for(error: Exception | None, *, accepted: bool) -> State:
    """Where an attempt stands after ``error``; anything we cannot be sure of stays open."""
    if not accepted:
        if isinstance(error, OverBudget):
            return "blocked"  # stopped by a budget before anything was sent
        if isinstance(error, (SubmitRejected, ProviderUnavailable)) and not isinstance(error, AcceptanceUnknown):
            return "rejected"  # the provider said no, or was never reached: nothing exists
        return "unknown"  # the POST may have reached the provider
    if isinstance(error, TaskFailed):
        return "failed"
    if isinstance(error, DownloadFailed):
        return "download_failed"  # paid for and not stored: stays open so it is collected again
    return "accepted"  # still running at the provider, or we lost track: resume by polling


def dumps(record: AttemptRecord) -> str:
    return json.dumps(record.model_dump(), sort_keys=True)


def prepared_from_record(record: AttemptRecord) -> PreparedRequest:
    """The request as it was prepared when this attempt was submitted (for collecting its output)."""
    from seedance_pipeline import pricing
    from seedance_pipeline.core.request import GenerationRequest
    from seedance_pipeline.providers.base import WireRequest

    req = record.request
    return PreparedRequest(
        provider=record.provider,
        request=GenerationRequest(**{k: req[k] for k in GenerationRequest.model_fields if k in req}),
        wire=WireRequest("POST", "(submitted earlier)"),
        fingerprint=record.fingerprint,
        aspect_ratio_sent=req.get("aspect_ratio_sent", req.get("aspect_ratio")),
        width=req["width"],
        height=req["height"],
        image_sha256=req.get("image_sha256", ""),
        last_image_sha256=req.get("last_image_sha256"),
        estimate=pricing.CostEstimate(
            usd=record.estimated_cost_usd,
            unit="recorded",
            rate_usd=0.0,
            quantity=0.0,
            assumption=record.estimate_is_assumption,
            source="task record",
        ),
    )
