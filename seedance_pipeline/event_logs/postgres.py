"""The production event log (dagster-postgres) with a connection kept open between events.

Dagster's PostgreSQL event log holds no connection (``NullPool``: "to prevent accumulating connections
per DagsterInstance"), so every event a run stores costs a new TCP connection, authentication and a
server backend. Here each process keeps one connection (``pool_size=1``; a thread that finds it in use
opens another and closes it after) and checks it with a ``SELECT 1`` before use, so a server restart or
an idle timeout costs one reconnect, not a failed event. The webserver still switches to its own pool
through ``optimize_for_webserver``, as with the stock class.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from dagster import DagsterEventType
from dagster_postgres.event_log import PostgresEventLogStorage
from dagster_postgres.event_log.event_log import CHANNEL_NAME
from dagster_postgres.utils import create_pg_engine, get_token_provider_from_config, pg_url_from_config
from sqlalchemy import text

from seedance_pipeline.dagster_internals import EventLogEntry, SqlEventLogStorageTable
from seedance_pipeline.event_logs import KnownTables, ask_for_batches
from seedance_pipeline.event_logs.batches import runs_of_one_kind
from seedance_pipeline.event_logs.checks import PlannedRowPerPartition, is_run_evaluation, record_evaluation

POOL_RECYCLE_S = 3600  # as Dagster's webserver pool: a connection is replaced after an hour


class PooledPostgresEventLogStorage(KnownTables, PlannedRowPerPartition, PostgresEventLogStorage):
    """``PostgresEventLogStorage`` with one pooled connection per process. Same config as the stock class."""

    def __init__(
        self,
        postgres_url: str,
        should_autocreate_tables: bool = True,
        inst_data: Any = None,
        token_provider: Any = None,
    ):
        super().__init__(postgres_url, should_autocreate_tables, inst_data=inst_data, token_provider=token_provider)
        self._engine.dispose()  # the stock NullPool engine, replaced by a pooled one on the same URL
        self._engine = create_pg_engine(
            self.postgres_url,
            self._token_provider,
            isolation_level="AUTOCOMMIT",
            pool_size=1,
            max_overflow=10,
            pool_recycle=POOL_RECYCLE_S,
            pool_pre_ping=True,
        )

    @classmethod
    def from_config_value(cls, inst_data: Any, config_value: Mapping[str, Any]) -> PooledPostgresEventLogStorage:
        ask_for_batches()
        return cls(
            postgres_url=pg_url_from_config(config_value),
            should_autocreate_tables=config_value.get("should_autocreate_tables", True),
            inst_data=inst_data,
            token_provider=get_token_provider_from_config(config_value),
        )

    def store_event(self, event: EventLogEntry) -> None:
        """An asset-check evaluation of a run: the event (with dagster-postgres' NOTIFY) and its execution row in
        one transaction on one connection (``checks.py``), where dagster-postgres takes two connections. Any other
        event as dagster-postgres stores it."""
        if not (is_run_evaluation(event) and self.supports_asset_checks):
            super().store_event(event)
            return
        row = self._event_to_row(event)
        table = SqlEventLogStorageTable
        with self.index_transaction() as conn:
            event_id = conn.execute(table.insert().returning(table.c.id), row).scalar_one()
            conn.execute(text(f"NOTIFY {CHANNEL_NAME}, :notify_id"), {"notify_id": f"{event.run_id}_{event_id}"})
            record_evaluation(conn, event, row, event_id)

    def store_event_batch(self, events: Sequence[EventLogEntry]) -> None:
        """A run of one asset's planned events in the batch (``batches.py``) in one statement and one index
        transaction, as dagster-postgres writes a batch of materializations; dagster-postgres stores planned
        events one at a time (two connections, two transactions and a NOTIFY each: 3 ms an event, M20). Anything
        else as dagster-postgres stores it (materializations and observations batched, other events singly)."""
        for at_once, run in runs_of_one_kind(events):
            if not (at_once and run[0].dagster_event_type == DagsterEventType.ASSET_MATERIALIZATION_PLANNED):
                super().store_event_batch(run)
                continue
            with self._connect() as conn:
                inserted = conn.execute(self.prepare_insert_event_batch(run).returning(SqlEventLogStorageTable.c.id))
                ids = [int(row[0]) for row in inserted.fetchall()]
            with self.index_transaction() as conn:
                self._store_asset_event_tags(conn, run, ids)
                self._store_asset_event(conn, run[-1], ids[-1])

    def dispose(self) -> None:
        super().dispose()
        self._engine.dispose()
