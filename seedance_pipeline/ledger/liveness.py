"""Which process owns an attempt, whether it is still alive, and so whether its attempt is orphaned.

An attempt records its owner as ``host:pid:start`` (``start`` = the process start time from /proc, so a
reused pid is not mistaken for the owner). On the same host, liveness is certain; on another host it is
unknown and callers fall back to the Dagster run's status (run monitoring marks crashed runs failed).
A ``kill -9`` of an in-process run (``seedance-pipeline run``) leaves its Dagster run STARTED forever, so
without this its tasks would never be collected.
"""

from __future__ import annotations

import os
import socket
from functools import lru_cache

import dagster as dg

from seedance_pipeline.ledger import states
from seedance_pipeline.ledger.records import AttemptRecord
from seedance_pipeline.providers import ADAPTER_CLASSES


def _start_ticks(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read().decode(errors="replace")
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: fields after the last ")" are fixed.
    return stat.rsplit(")", 1)[1].split()[19]


@lru_cache(maxsize=1)
def current_owner() -> str:
    pid = os.getpid()
    return f"{socket.gethostname()}:{pid}:{_start_ticks(pid) or '-'}"


def owner_alive(owner: str | None) -> bool | None:
    """True/False when the owner runs on this host; None when that cannot be told from here."""
    if not owner:
        return None
    try:
        host, pid_text, start = owner.rsplit(":", 2)
        pid = int(pid_text)
    except ValueError:
        return None
    if host != socket.gethostname():
        return None
    if start == "-":  # no /proc on this system: the pid alone
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    return _start_ticks(pid) == start


def orphaned(record: AttemptRecord, instance: dg.DagsterInstance) -> bool:
    """No live process is working on this attempt: its owner died, or (owner on another host) its run ended."""
    alive = owner_alive(record.owner)
    if alive is not None:
        return not alive
    run = instance.get_run_by_id(record.run_id) if record.run_id else None
    ended = (dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED)
    return run is None or run.status in ended


class Orphans:
    """``orphaned`` for many records, asking the instance once per (owner, run): a tick over 5,000 open attempts
    of 100 runs makes 100 run lookups, not 5,000 (each a run-storage query, about 5-10 ms on SQLite: the
    pending-tasks sensor's tick took 23.6 s, benchmark 5)."""

    def __init__(self, instance: dg.DagsterInstance):
        self.instance = instance
        self._known: dict[tuple[str | None, str | None], bool] = {}

    def __call__(self, record: AttemptRecord) -> bool:
        key = (record.owner, record.run_id)
        if key not in self._known:
            self._known[key] = orphaned(record, self.instance)
        return self._known[key]


def retention_warning(record: AttemptRecord, now: float) -> str | None:
    """A warning for a task open so long that its provider may soon forget it (then it is lost, and billed),
    with what collects it; None while it is young or the provider's retention is not documented."""
    retention = ADAPTER_CLASSES[record.provider].task_retention_s if record.provider in ADAPTER_CLASSES else None
    age = now - record.updated_at
    if retention is None or record.state not in states.COLLECTABLE or age < retention / 2:
        return None
    return (
        f"attempt {record.attempt_id} ({record.image}|{record.prompt}, {record.provider} task {record.task_id}) has "
        f"been open {age / 60:.0f} min; {record.provider} forgets a task {retention / 60:.0f} min after it ends. "
        "Collect it now: `seedance-pipeline run` (or the pending-tasks sensor, once its run has died)"
    )
