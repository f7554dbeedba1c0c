"""The embedded default's event log (Dagster's SQLite one, one file per run plus an index file), with
one engine and one open connection per file instead of a new engine for every statement, a batch of one
asset's materializations stored in one transaction per file, and a run's materializations and check evaluations
written through statements compiled once (``statements.py``)."""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from dagster import DagsterEventType, Field, StringSource
from sqlalchemy import create_engine, event
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Connection, Engine

from seedance_pipeline.dagster_internals import (
    SQLITE_BUSY_TIMEOUT_SECONDS,
    AssetCheckExecutionsTable,
    AssetKeyTable,
    EventLogEntry,
    SqlEventLogStorageTable,
    SqliteEventLogStorage,
)
from seedance_pipeline.event_logs import KnownTables, ask_for_batches
from seedance_pipeline.event_logs.batches import runs_of_one_kind
from seedance_pipeline.event_logs.checks import PlannedRowPerPartition, check_updated, execution_row, is_run_evaluation
from seedance_pipeline.event_logs.statements import Statements

# The index file and the run files last used. A run worker writes to two files; a webserver reads
# whichever runs are open in the UI, so the cache is bounded and the least recently used is closed.
OPEN_FILES = 8


def _commit_without_sync(dbapi_connection: Any, _record: Any) -> None:
    """``synchronous=NORMAL``: in WAL mode (Dagster's ``_initdb`` sets it on every file), a commit no longer waits
    for the disk; the log is synced at checkpoints. A process that dies loses nothing committed, and no crash
    corrupts the file; an OS crash or power loss can take the last commits. A materialization lost that way is
    found again: the next run reuses its clip, durable in storage, by fingerprint, without a request
    (docs/architecture.md, "Durability"; M28)."""
    dbapi_connection.execute("PRAGMA synchronous=NORMAL")


def _identity(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_dev, st.st_ino


def _is_materialization(event: EventLogEntry) -> bool:
    return event.dagster_event is not None and event.dagster_event.event_type == DagsterEventType.ASSET_MATERIALIZATION


class PooledSqliteEventLogStorage(KnownTables, PlannedRowPerPartition, SqliteEventLogStorage):
    """``SqliteEventLogStorage`` that keeps each file's engine (SQLAlchemy's pool of one connection:
    statements still run one at a time, under the storage's lock, each in its own transaction).

    A file deleted or replaced behind our back (``wipe``, another process) is noticed by its inode on
    the next statement, and reopened: no event goes into a file nobody reads.
    ``base_dir`` defaults to where Dagster's default puts the event log: ``$DAGSTER_HOME/history/runs``.
    """

    def __init__(self, base_dir: str, inst_data: Any = None):
        self._engines: OrderedDict[str, tuple[Engine, tuple[int, int] | None]] = OrderedDict()
        self._kept: dict[str, Connection] = {}  # per file, the connection its last statement ran on
        self._sql = Statements(sqlite.dialect())
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
            self._dispose(shard, engine)  # the file was deleted or replaced: its tables must be created again
            self._initialized_dbs.discard(shard)
        # One connection kept; Dagster's _initdb opens a second one while its first is open (closed after).
        engine = create_engine(
            self.conn_string_for_shard(shard),
            pool_size=1,
            max_overflow=2,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS},
        )
        event.listen(engine, "connect", _commit_without_sync)
        self._engines[shard] = (engine, identity)
        while len(self._engines) > OPEN_FILES:
            evicted, (oldest, _) = self._engines.popitem(last=False)
            self._dispose(evicted, oldest)
        return engine

    def _dispose(self, shard: str, engine: Engine) -> None:
        kept = self._kept.pop(shard, None)
        if kept is not None:
            kept.close()
        engine.dispose()

    @contextmanager
    def _connect(self, shard: str) -> Iterator[Connection]:
        with self._db_lock:
            engine = self._engine_for(shard)
            if shard not in self._initialized_dbs:
                self._initdb(engine)
                self._initialized_dbs.add(shard)
            # The connection the file's last statement ran on, kept checked out of the pool: SQLAlchemy's checkout
            # and check-in (with its rollback) cost more than the statements (M25). The lock is not reentrant, so
            # no use of a file nests in another.
            conn = self._kept.pop(shard, None) or engine.connect()
            try:
                with conn.begin():
                    yield conn
            except BaseException:
                conn.close()  # rolled back; the next use starts from a fresh connection
                raise
            finally:
                if self._engines[shard][1] is None:  # the first statement created the file: remember which
                    self._engines[shard] = (engine, _identity(self.path_for_shard(shard)))
            self._kept[shard] = conn

    def store_event(self, event: EventLogEntry) -> None:
        """A run's check evaluation: the event in the run's file, then in the index with its execution row in the
        same transaction (``checks.py``). A materialization as Dagster stores it (the run's file; the index's
        event, tags and asset row in one transaction). The events and rows through statements compiled once
        (``statements.py``); the tags, one statement a materialization, as Dagster writes them.
        Any other event as Dagster stores it."""
        if is_run_evaluation(event) and self.supports_asset_checks:
            self._store_in_run_and_index(event, self._execution_row)
        elif _is_materialization(event):
            self._store_in_run_and_index(event, self._asset_rows)
        else:
            super().store_event(event)

    def _store_in_run_and_index(
        self, event: EventLogEntry, index_rows: Callable[[Connection, EventLogEntry, dict[str, Any], int], None]
    ) -> None:
        """The event in the run's file, then in the index, where ``index_rows(conn, event, row, event_id)`` writes the
        rows that go with it, in the same transaction."""
        row = self._event_to_row(event)
        with self.run_connection(event.run_id) as conn:
            self._sql.insert(conn, SqlEventLogStorageTable, row)
        with self.index_transaction() as conn:
            index_rows(conn, event, row, self._sql.insert(conn, SqlEventLogStorageTable, row))

    def _execution_row(self, conn: Connection, event: EventLogEntry, row: dict[str, Any], event_id: int) -> None:
        values, where = execution_row(event, row, event_id)
        if not check_updated(event, self._sql.update(conn, AssetCheckExecutionsTable, values, where)):
            self._sql.insert(conn, AssetCheckExecutionsTable, {**where, **values})

    def _asset_rows(self, conn: Connection, event: EventLogEntry, row: dict[str, Any], event_id: int) -> None:
        self._store_asset_event_tags(conn, [event], [event_id])
        self._store_asset_event(conn, event, event_id)

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
        if not self._sql.update(conn, AssetKeyTable, values, {"asset_key": key}):
            self._sql.insert(conn, AssetKeyTable, {"asset_key": key, **values})

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
                shard, (engine, _) = self._engines.popitem()
                self._dispose(shard, engine)

    def wipe(self) -> None:
        self._close_all()
        super().wipe()

    def dispose(self) -> None:
        self._close_all()
        super().dispose()
