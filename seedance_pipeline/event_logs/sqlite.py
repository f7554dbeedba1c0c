"""The embedded default's event log (Dagster's SQLite one, one file per run plus an index file), with
one engine and one open connection per file instead of a new engine for every statement, and a batch of one
asset's materializations stored in one transaction per file."""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from dagster import Field, StringSource
from sqlalchemy import create_engine
from sqlalchemy.engine import Connection, Engine

from seedance_pipeline.dagster_internals import (
    SQLITE_BUSY_TIMEOUT_SECONDS,
    AssetKeyTable,
    EventLogEntry,
    SqlEventLogStorageTable,
    SqliteEventLogStorage,
)
from seedance_pipeline.event_logs import KnownTables, ask_for_batches
from seedance_pipeline.event_logs.batches import runs_of_one_kind
from seedance_pipeline.event_logs.checks import PlannedRowPerPartition, is_run_evaluation, record_evaluation

# The index file and the run files last used. A run worker writes to two files; a webserver reads
# whichever runs are open in the UI, so the cache is bounded and the least recently used is closed.
OPEN_FILES = 8


def _identity(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_dev, st.st_ino


class PooledSqliteEventLogStorage(KnownTables, PlannedRowPerPartition, SqliteEventLogStorage):
    """``SqliteEventLogStorage`` that keeps each file's engine (SQLAlchemy's pool of one connection:
    statements still run one at a time, under the storage's lock, each in its own transaction).

    A file deleted or replaced behind our back (``wipe``, another process) is noticed by its inode on
    the next statement, and reopened: no event goes into a file nobody reads.
    ``base_dir`` defaults to where Dagster's default puts the event log: ``$DAGSTER_HOME/history/runs``.
    """

    def __init__(self, base_dir: str, inst_data: Any = None):
        self._engines: OrderedDict[str, tuple[Engine, tuple[int, int] | None]] = OrderedDict()
        super().__init__(base_dir, inst_data=inst_data)

    @classmethod
    def config_type(cls) -> dict:
        return {"base_dir": Field(StringSource, is_required=False)}

    @classmethod
    def from_config_value(cls, inst_data: Any, config_value: Mapping[str, Any]) -> PooledSqliteEventLogStorage:
        base_dir = config_value.get("base_dir")
        if not base_dir:
            home = os.environ.get("DAGSTER_HOME")
            if not home:
                raise ValueError(
                    "event_log_storage.config.base_dir: not set, and DAGSTER_HOME is not set either "
                    "(the default is $DAGSTER_HOME/history/runs)"
                )
            base_dir = os.path.join(home, "history", "runs")
        ask_for_batches()
        return cls(base_dir, inst_data=inst_data)

    def _engine_for(self, shard: str) -> Engine:
        """Called under ``self._db_lock``."""
        identity = _identity(self.path_for_shard(shard))
        cached = self._engines.pop(shard, None)
        if cached is not None:
            engine, known = cached
            if known == identity:
                self._engines[shard] = (engine, identity)
                return engine
            engine.dispose()  # the file was deleted or replaced: its tables must be created again
            self._initialized_dbs.discard(shard)
        # One connection kept; Dagster's _initdb opens a second one while its first is open (closed after).
        engine = create_engine(
            self.conn_string_for_shard(shard),
            pool_size=1,
            max_overflow=2,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS},
        )
        self._engines[shard] = (engine, identity)
        while len(self._engines) > OPEN_FILES:
            _, (oldest, _) = self._engines.popitem(last=False)
            oldest.dispose()
        return engine

    @contextmanager
    def _connect(self, shard: str) -> Iterator[Connection]:
        with self._db_lock:
            engine = self._engine_for(shard)
            if shard not in self._initialized_dbs:
                self._initdb(engine)
                self._initialized_dbs.add(shard)
            try:
                with engine.connect() as conn, conn.begin():
                    yield conn
            finally:
                if self._engines[shard][1] is None:  # the first statement created the file: remember which
                    self._engines[shard] = (engine, _identity(self.path_for_shard(shard)))

    def store_event(self, event: EventLogEntry) -> None:
        """An asset-check evaluation of a run: the event in the run's file, then in the index with its execution
        row in the same transaction (``checks.py``). Any other event as Dagster stores it."""
        if not (is_run_evaluation(event) and self.supports_asset_checks):
            super().store_event(event)
            return
        row = self._event_to_row(event)
        with self.run_connection(event.run_id) as conn:
            conn.execute(SqlEventLogStorageTable.insert(), row)
        with self.index_transaction() as conn:
            inserted = conn.execute(SqlEventLogStorageTable.insert().returning(SqlEventLogStorageTable.c.id), row)
            record_evaluation(conn, event, row, inserted.scalar_one())

    def _store_asset_event(self, conn: Connection, event: EventLogEntry, event_id: int) -> None:
        """The asset's row from its latest event, as Dagster writes it, but updated first and inserted only for an
        asset without a row: Dagster inserts first and updates on the IntegrityError, an exception for every event
        of an asset after its first (a quarter of storing a clip's materialization, M17). Called in the index's
        transaction after the event's row is written, so this connection holds SQLite's write lock: no other
        writer can add the row between the two statements."""
        if not (event.dagster_event and event.dagster_event.asset_key):
            return
        values = self._get_asset_entry_values(event, event_id, self._has_asset_key_index_cols_on_connection(conn))
        if not values:
            return
        key = event.dagster_event.asset_key.to_string()
        if not conn.execute(AssetKeyTable.update().values(**values).where(AssetKeyTable.c.asset_key == key)).rowcount:
            conn.execute(AssetKeyTable.insert().values(asset_key=key, **values))

    def store_event_batch(self, events: Sequence[EventLogEntry]) -> None:
        """Each run of one asset's materializations, observations or planned events of one run in the batch
        (``batches.py``) in one transaction per file; any other event as Dagster stores it.

        Dagster's SQLite class stores a batch an event at a time: per event, a transaction in the run's file and
        one in the index (two commits, each a WAL sync). Written here as dagster-postgres writes a batch: every
        event into the run's file and the index, the asset tags of each, and the asset's row from the last event
        (the rows of the others would be overwritten by it)."""
        for at_once, run in runs_of_one_kind(events):
            if not at_once:
                super().store_event_batch(run)
                continue
            rows = [self._event_to_row(e) for e in run]
            table = SqlEventLogStorageTable
            with self.run_connection(run[0].run_id) as conn:
                conn.execute(table.insert(), rows)
            with self.index_transaction() as conn:
                inserted = conn.execute(table.insert().returning(table.c.id, sort_by_parameter_order=True), rows)
                ids = [row[0] for row in inserted]
                self._store_asset_event_tags(conn, run, ids)
                self._store_asset_event(conn, run[-1], ids[-1])

    def _close_all(self) -> None:
        with self._db_lock:
            while self._engines:
                _, (engine, _) = self._engines.popitem()
                engine.dispose()

    def wipe(self) -> None:
        self._close_all()
        super().wipe()

    def dispose(self) -> None:
        self._close_all()
        super().dispose()
