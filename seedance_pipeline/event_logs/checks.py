"""A check evaluation's row in ``asset_check_executions``, written on the connection that stores its event.

Dagster's SQL event logs store an asset-check evaluation of a run in three transactions: the event in the run's
log, the event in the index, then the execution row (an UPDATE of the row a planned check left, else an INSERT),
with the event serialized once more for that row and each statement built anew. A clips run stores seven
evaluations a clip, one after another in the step's thread (benchmarks/README.md, "Measurements behind the code",
M14). Here the index's event and the execution row share one transaction and one serialization, through
statements built once. The row is the one Dagster's ``_update_asset_check_evaluation`` writes, column for column
(``seedance_pipeline_tests/test_event_logs.py`` compares them).

A run that includes an asset's checks (an asset backfill's, the UI's Materialize) plans each check for the run's
N partitions: one planned event per check whose partition subset holds all N, from which Dagster writes N
execution rows, each carrying that whole event, serialized again for every row. For the clips asset's seven
checks that is 7 x N rows of N keys: a run of 1,000 clips took 10.8 s to create and 170 MB of the instance, and
grows as N squared (M19). Here each row carries the planned event narrowed to its own partition (serialized once
a check, each row's key spliced in), all in one executemany
(``seedance_pipeline_tests/test_event_logs_planned_checks.py``).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

from dagster import DagsterEventType, DagsterInvariantViolationError, serialize_value
from sqlalchemy import and_, bindparam
from sqlalchemy.engine import Connection

from seedance_pipeline.dagster_internals import (
    AssetCheckExecutionRecordStatus,
    AssetCheckExecutionsTable,
    EventLogEntry,
    replace_record,
)

_TABLE = AssetCheckExecutionsTable
_SAME_CHECK = and_(
    _TABLE.c.asset_key == bindparam("w_asset_key"),
    _TABLE.c.check_name == bindparam("w_check_name"),
    _TABLE.c.run_id == bindparam("w_run_id"),
)
# The row a planned evaluation left (Dagster: asset key, check name and run identify it; then the partition).
_UPDATE = _TABLE.update().where(_SAME_CHECK, _TABLE.c.partition == bindparam("w_partition"))
_UPDATE_UNPARTITIONED = _TABLE.update().where(_SAME_CHECK, _TABLE.c.partition.is_(None))
_INSERT = _TABLE.insert()


def is_run_evaluation(event: Any) -> bool:
    """Whether ``event`` is an asset-check evaluation of a run: what ``record_evaluation`` writes (a runless one,
    and every other event, is stored as Dagster stores it)."""
    dagster_event = event.dagster_event
    return (
        dagster_event is not None
        and dagster_event.event_type == DagsterEventType.ASSET_CHECK_EVALUATION
        and bool(event.run_id)
    )


def execution_row(event: Any, row: dict[str, Any], event_id: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """The execution row of the evaluation ``event`` (of a run), whose event-log ``row`` (Dagster's
    ``_event_to_row``) was stored as ``event_id``: the values Dagster sets, and the columns that find the row a
    planned evaluation left (asset key, check name, run, then the partition; None: IS NULL). A new row is both: the
    partition is the same in each."""
    evaluation = event.dagster_event.event_specific_data
    passed = AssetCheckExecutionRecordStatus.SUCCEEDED if evaluation.passed else AssetCheckExecutionRecordStatus.FAILED
    target = evaluation.target_materialization_data
    values = {
        "execution_status": passed.value,
        "evaluation_event": row["event"],
        "evaluation_event_timestamp": row["timestamp"],
        "evaluation_event_storage_id": event_id,
        "materialization_event_storage_id": target.storage_id if target else None,
        "partition": evaluation.partition,
    }
    where = {
        "asset_key": evaluation.asset_key.to_string(),
        "check_name": evaluation.check_name,
        "run_id": event.run_id,
        "partition": evaluation.partition,
    }
    return values, where


def check_updated(event: Any, updated: int) -> bool:
    """Whether an UPDATE of ``updated`` rows found the planned row (False: insert it); more than one is an error,
    as in Dagster."""
    if updated > 1:
        evaluation = event.dagster_event.event_specific_data
        raise DagsterInvariantViolationError(
            f"Updated {updated} rows for asset check evaluation {evaluation.asset_check_key} "
            "as a result of duplicate AssetCheckPlanned events."
        )
    # no planned row: a check reported by an asset's step without a spec, as the clips step does
    return updated == 1


def record_evaluation(conn: Connection, event: Any, row: dict[str, Any], event_id: int) -> None:
    """``execution_row`` written through SQLAlchemy on ``conn``, in ``conn``'s transaction (PostgreSQL; the SQLite
    event log runs the same statements on its driver, ``statements.py``)."""
    values, where = execution_row(event, row, event_id)
    unpartitioned = where["partition"] is None
    where_params = {f"w_{k}": v for k, v in where.items() if not (unpartitioned and k == "partition")}
    updated = conn.execute(_UPDATE_UNPARTITIONED if unpartitioned else _UPDATE, {**values, **where_params}).rowcount
    if not check_updated(event, updated):
        conn.execute(_INSERT, {**where, **values})  # a new row: the columns that find it, and its values


def planned_rows(event: EventLogEntry, event_id: int | None, timestamp: Any) -> list[dict[str, Any]]:
    """The execution rows of a planned check ``event`` (stored as ``event_id`` at ``timestamp``): Dagster's row
    for each planned partition (one for an unpartitioned check), whose event is ``event`` narrowed to that
    partition instead of all of them."""
    assert event.dagster_event is not None
    planned = event.dagster_event.asset_check_planned_data
    common = {
        "asset_key": planned.asset_key.to_string(),
        "check_name": planned.check_name,
        "run_id": event.run_id,
        "execution_status": AssetCheckExecutionRecordStatus.PLANNED.value,
        "evaluation_event_timestamp": timestamp,
        "evaluation_event_storage_id": event_id,
    }
    subset = planned.partitions_subset
    if subset is None:
        return [{**common, "partition": None, "evaluation_event": serialize_value(event)}]
    serialized = _narrowed_serializer(event, subset)
    return [{**common, "partition": key, "evaluation_event": serialized(key)} for key in subset.get_partition_keys()]


def _narrowed_serializer(event: EventLogEntry, subset: Any) -> Callable[[str], str]:
    """key -> ``event`` serialized with its planned partitions narrowed to ``key``. The key is the only part that
    differs between rows: the event is serialized once around a marker key and each row's key is spliced in as
    JSON encodes it (what ``serialize_value`` writes for a set of one string); a subset that parses its keys (time
    windows) refuses the marker and is serialized a row at a time."""
    dagster_event = event.dagster_event
    assert dagster_event is not None
    planned, empty = dagster_event.asset_check_planned_data, subset.empty_subset()

    def narrowed(key: str) -> str:
        data = replace_record(planned, partitions_subset=empty.with_partition_keys([key]).to_serializable_subset())
        return serialize_value(event._replace(dagster_event=dagster_event._replace(event_specific_data=data)))

    marker = f"\0seedance-partition-{uuid.uuid4().hex}"
    try:
        parts = narrowed(marker).split(json.dumps(marker))
    except Exception:
        return narrowed
    if len(parts) != 2:
        return narrowed
    before, after = parts
    return lambda key: before + json.dumps(key) + after


class PlannedRowPerPartition:
    """Mixin for a SQL event log: a planned check's execution rows from ``planned_rows``, in one executemany."""

    def _store_asset_check_evaluation_planned(self, event: EventLogEntry, event_id: int | None) -> None:
        rows = planned_rows(event, event_id, self._event_insert_timestamp(event))  # type: ignore[attr-defined]
        with self.index_connection() as conn:  # type: ignore[attr-defined]
            conn.execute(_INSERT, rows)
