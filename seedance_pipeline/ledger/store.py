"""``TaskStore``: the write-ahead records of every provider attempt, kept in storage next to the clips.

One JSON object per attempt, written by that attempt's process only (so many writers never collide):

    tasks/days/<YYYY-MM-DD>/<attempt_id>.json     the record; the day is the attempt's UTC start
    tasks/by-fingerprint/<fingerprint>/<attempt_id>   empty marker: find attempts for a request
    tasks/open/<attempt_id>.json                  copy of the record while it needs attention
                                                  (``states.OPEN``)

The intent is durable before the submit POST leaves, the task id the moment the provider answers,
the outcome when done. A crash at any point leaves a record that says exactly what is known.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections.abc import Callable, Container
from datetime import UTC, datetime, timedelta
from typing import Any

from seedance_pipeline.clip.prepare import PreparedRequest
from seedance_pipeline.ledger import states
from seedance_pipeline.ledger.liveness import current_owner
from seedance_pipeline.ledger.records import AttemptRecord, new_attempt_id
from seedance_pipeline.ledger.states import AttemptState, check_move
from seedance_pipeline.storage import layout
from seedance_pipeline.storage.resource import SeedanceStorage, file_stamp


class TaskStore:
    def __init__(self, storage: SeedanceStorage):
        self.storage = storage

    def _record_path(self, attempt_id: str) -> str:
        return self.storage.path(layout.task_record(attempt_id))

    def _open_path(self, attempt_id: str) -> str:
        return self.storage.path(layout.task_open(attempt_id))

    def _marker_path(self, fingerprint: str, attempt_id: str) -> str:
        return self.storage.path(layout.task_marker(fingerprint, attempt_id))

    def save(self, record: AttemptRecord, *, claim: bool = True) -> AttemptRecord:
        """Write the record (as owned by this process, unless ``claim`` is False: then its owner stays, as when
        a record is settled for whoever collects it) and keep tasks/open/ in step with its state."""
        owner = current_owner() if claim else record.owner
        record = record.model_copy(update={"updated_at": time.time(), "owner": owner})
        data = record.model_dump_json(indent=1).encode()
        open_path = self._open_path(record.attempt_id)
        if record.state in states.OPEN:
            # The open copy first: a record that needs attention is never missing from tasks/open/ (what
            # `tasks list` and the pending-tasks sensor read), whichever of the two writes fails.
            self.storage.write_bytes(open_path, data)
            self.storage.write_bytes(self._record_path(record.attempt_id), data)
        else:
            self.storage.write_bytes(self._record_path(record.attempt_id), data)
            # No exists() first: that is a HEAD per clip on an object store, whose DELETE of a missing key
            # succeeds anyway (a local folder raises, and there is nothing to remove).
            with contextlib.suppress(FileNotFoundError):
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
        state: AttemptState = AttemptState.INTENT,
        **fields: Any,
    ) -> AttemptRecord:
        check_move(None, state)
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
            owner=current_owner(),
            **fields,
        )
        marker = self._marker_path(record.fingerprint, record.attempt_id)
        if record.state not in states.OPEN:
            self.storage.write_bytes(marker, b"")
            return self.save(record)
        data = record.model_dump_json(indent=1).encode()
        try:
            # The marker and the open copy in either order (a marker without its record is skipped when read; an
            # open copy without it is an intent never sent, ``written``), then the record, as ``save`` orders
            # them: the submit waits two round trips on an object store, not three.
            self.storage.write_all({marker: b"", self._open_path(record.attempt_id): data})
            self.storage.write_bytes(self._record_path(record.attempt_id), data)
            return record
        except OSError:
            # Nothing was sent (the caller submits only after this returns): an open copy written before the
            # record's write failed would list an attempt that does not exist. Best effort; a marker without
            # its record is skipped when read.
            with contextlib.suppress(OSError):
                self.storage.fs.rm(self._open_path(record.attempt_id))
            raise

    def load(self, attempt_id: str) -> AttemptRecord:
        """The attempt's record; its open copy when the record itself was never written (``written``)."""
        try:
            record = AttemptRecord.model_validate_json(self.storage.read_bytes(self._record_path(attempt_id)))
        except FileNotFoundError:
            return AttemptRecord.model_validate_json(self.storage.read_bytes(self._open_path(attempt_id)))
        return self._newest([record])[0]

    def written(self, attempt_id: str) -> bool:
        """Whether the attempt's record exists. ``create`` writes the open copy, then the record, and only then
        does the caller send anything: an open copy without its record is an intent never sent (the process
        stopped between the two writes)."""
        return self.storage.fs.exists(self._record_path(attempt_id))

    def _load_many(self, paths: list[str]) -> list[AttemptRecord]:
        return list(self.read_records(paths).values())

    def read_records(self, paths: list[str]) -> dict[str, AttemptRecord]:
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
        intents = [r for r in records if r.state is AttemptState.INTENT]
        if not intents:
            return records
        blobs = self.storage.fs.cat([self._open_path(r.attempt_id) for r in intents], on_error="omit")
        copies = {c.attempt_id: c for c in map(AttemptRecord.model_validate_json, blobs.values())}
        return [
            copies[r.attempt_id] if r.attempt_id in copies and copies[r.attempt_id].updated_at > r.updated_at else r
            for r in records
        ]

    def open_records(self) -> list[AttemptRecord]:
        # list_folder: one listing on S3 also when nothing is open (s3fs's find of an empty prefix makes three)
        paths = self.storage.list_folder(self.storage.path(layout.TASKS_OPEN))
        return self._load_many([p for p in paths if p.endswith(".json")])

    def confirmed(self, copies: list[AttemptRecord]) -> list[AttemptRecord]:
        """The open copies (from ``open_records``) that their records still agree need attention, each as the newer
        of the two. A copy is stale when its record was written later in a state that needs none: ``save`` writes
        the record, then removes the copy, and that removal failed (a storage error). A stale copy is removed
        here (best effort: otherwise the next caller does it); a caller acts only on what this returns."""
        records = self.read_records([self._record_path(c.attempt_id) for c in copies])
        current = []
        for copy in copies:
            record = records.get(self._record_path(copy.attempt_id))
            if record is None or record.updated_at < copy.updated_at:
                current.append(copy)
            elif record.state in states.OPEN:
                current.append(record)
            else:
                with contextlib.suppress(OSError):
                    self.storage.fs.rm(self._open_path(copy.attempt_id))
        return current

    def confirmed_open(self, where: Callable[[AttemptRecord], bool]) -> list[AttemptRecord]:
        """The open attempts for which ``where`` holds, as ``confirmed`` finds them: only the copies ``where`` picks
        are checked against their records, and ``where`` is asked again of what the check returns."""
        return [r for r in self.confirmed([c for c in self.open_records() if where(c)]) if where(r)]

    def day_records(self, day: str) -> list[AttemptRecord]:
        try:
            paths = sorted(self.storage.fs.find(self.storage.path(layout.task_day(day))))
        except FileNotFoundError:
            return []
        return self._load_many([p for p in paths if p.endswith(".json")])

    def day_digest(self, day: str) -> str:
        """Changes whenever an attempt of ``day`` is added or rewritten: a hash of its records' stamps (one listing,
        no read). The cost report records it, so a run can tell that the report it would build is the one stored."""
        stamps = sorted((p.rsplit("/", 1)[-1], stamp) for p, stamp in self.day_stamps(day).items())
        return hashlib.sha256(repr(stamps).encode()).hexdigest()[:16]

    def day_stamps(self, day: str) -> dict[str, str]:
        """Path -> stamp (size + mtime/ETag) of every record file of ``day``, from one listing."""
        try:
            listing = self.storage.fs.find(self.storage.path(layout.task_day(day)), detail=True)
        except FileNotFoundError:
            return {}
        return {p: file_stamp(info) for p, info in listing.items() if p.endswith(".json")}

    def day_stamps_between(self, day: str, first: float, last: float, skip: Container[str] = ()) -> dict[str, str]:
        """``day_stamps`` of the records of ``day`` whose ids begin in the ten minutes blocks from ``first`` to
        ``last`` (epoch seconds; an id begins with its attempt's start, ``2026-12-07T061503Z-...``), but for the
        attempts in ``skip``: one listing per block on an object store, however many attempts the day already
        holds; locally no stat of a skipped one."""
        at = datetime.fromtimestamp(first, UTC)
        block = at.replace(minute=at.minute - at.minute % 10, second=0, microsecond=0)
        prefixes = []
        while block.timestamp() <= last:
            if f"{block:%Y-%m-%d}" == day:
                prefixes.append(f"{block:%Y-%m-%dT%H}{block.minute // 10}")
            block += timedelta(minutes=10)
        if not prefixes:
            return {}
        found = self.storage.stamps(
            self.storage.path(layout.task_day(day)),
            prefixes,
            (lambda name: name.removesuffix(".json") in skip) if skip else None,
        )
        return {p: stamp for p, stamp in found.items() if p.endswith(".json")}  # not a write still under way

    def records_since(self, since: float, until: float | None = None) -> list[AttemptRecord]:
        """The attempts started at or after ``since`` (epoch seconds), up to ``until`` (default now): only their
        files are read, picked by the start time their ids begin with."""
        first, last = new_attempt_id(since)[:18], new_attempt_id(until or time.time())[:18]
        day, paths = first[:10], []
        while day <= last[:10]:
            try:
                names = self.storage.fs.ls(self.storage.path(layout.task_day(day)), detail=False)
            except FileNotFoundError:
                names = []
            paths += [p for p in names if p.endswith(".json") and first <= p.rsplit("/", 1)[-1][:18] <= last]
            day = f"{datetime.fromisoformat(day).date() + timedelta(days=1):%Y-%m-%d}"
        return self._newest(self._load_many(sorted(paths)))

    def fingerprints(self) -> set[str]:
        """Every fingerprint with a recorded attempt, in one listing (a plan of many clips looks up only these)."""
        try:
            return {
                p.rstrip("/").rsplit("/", 1)[-1]
                for p in self.storage.fs.ls(self.storage.path(layout.TASKS_BY_FINGERPRINT), detail=False)
            }
        except FileNotFoundError:
            return set()

    def for_fingerprint(self, fingerprint: str) -> list[AttemptRecord]:
        markers = self.storage.list_folder(self.storage.path(layout.task_markers(fingerprint)))
        ids = sorted(m.rsplit("/", 1)[-1] for m in markers)
        return self._newest(self._load_many([self._record_path(i) for i in ids]))
