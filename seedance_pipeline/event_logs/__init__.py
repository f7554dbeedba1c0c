"""Dagster event-log storages that keep their database connections between events.

Dagster's SQLite and PostgreSQL event logs open a new database connection for every event they store
(SQLAlchemy ``NullPool``; SQLite even builds a new engine), and ask the database whether the asset-check
table exists before storing each check result. A clips run stores five events per clip (planned,
materialization, three checks), each in the step's thread, so that is where the run spends its time
(benchmarks/README.md, "Measurements behind the code", M1). The classes here change that; the SQLite one also
stores a batch of materializations in one transaction per file (M12) and a check evaluation with its execution
row in one transaction (``checks.py``, M14). They are
named in ``dagster.yaml`` (``event_log_storage: module/class``): ``sqlite`` for the embedded default,
``postgres`` for ``deploy/dagster.yaml``.
"""

from __future__ import annotations

import os
import threading
from typing import Any

# Dagster hands a run's planned events (one per partition, stored by the process that creates the run, before its
# first step) to the event log's ``store_event_batch`` in batches of this many when DAGSTER_EVENT_BATCH_SIZE is
# set, else one at a time; both classes here store each run of one asset's planned events in a batch at once
# (``batches.py``; benchmarks/README.md, M15 and M20).
PLANNED_EVENT_BATCH = "1000"


def ask_for_batches() -> None:
    """Set DAGSTER_EVENT_BATCH_SIZE for this process (a value already set is kept). Called where an instance builds
    one of these event logs: so the webserver and the daemon of ``dagster dev`` (they create the runs launched from
    the UI, by sensors and by backfills) batch too, not only the CLI. Dagster reads the variable at every event."""
    os.environ.setdefault("DAGSTER_EVENT_BATCH_SIZE", PLANNED_EVENT_BATCH)


class KnownTables:
    """Mixin for a SQL event log: remember the tables and columns found, instead of asking the database again.

    Dagster asks ``has_table("asset_check_executions")`` before storing every asset-check result (a new
    connection and a catalog query each time), and reflects the ``asset_keys`` table's columns before storing
    every asset event (a fifth of the time a source image's materialization takes to store). A table or a
    column, once there, stays: migrations only add them, and ``wipe`` deletes rows. Absent ones are asked
    again, so a migration is seen when it lands."""

    _tables_seen: frozenset[str] = frozenset()
    _asset_key_columns_seen: frozenset[str] = frozenset()
    _tables_lock = threading.Lock()

    def _has_asset_key_col_on_connection(self, conn: Any, column_name: str) -> bool:
        if column_name in self._asset_key_columns_seen:
            return True
        present = super()._has_asset_key_col_on_connection(conn, column_name)  # type: ignore[misc]
        if present:
            with self._tables_lock:
                self._asset_key_columns_seen = self._asset_key_columns_seen | {column_name}
        return present

    def has_table(self, table_name: str) -> bool:
        if table_name in self._tables_seen:
            return True
        present = super().has_table(table_name)  # type: ignore[misc]
        if present:
            with self._tables_lock:
                self._tables_seen = self._tables_seen | {table_name}
        return present
