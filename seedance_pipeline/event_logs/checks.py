"""A check evaluation's row in ``asset_check_executions``, written on the connection that stores its event.

Dagster's SQL event logs store an asset-check evaluation of a run in three transactions: the event in the run's
log, the event in the index, then the execution row (an UPDATE of the row a planned check left, else an INSERT),
with the event serialized once more for that row and each statement built anew. A clips run stores seven
evaluations a clip, one after another in the step's thread (benchmarks/README.md, "Measurements behind the code",
M14). Here the index's event and the execution row share one transaction and one serialization, through
statements built once. The row is the one Dagster's ``_update_asset_check_evaluation`` writes, column for column
(``seedance_pipeline_tests/test_event_logs.py`` compares them).
"""

from __future__ import annotations

from typing import Any

from dagster import DagsterEventType, DagsterInvariantViolationError
from sqlalchemy import and_, bindparam
from sqlalchemy.engine import Connection

from seedance_pipeline.dagster_internals import AssetCheckExecutionRecordStatus, AssetCheckExecutionsTable

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


def record_evaluation(conn: Connection, event: Any, row: dict[str, Any], event_id: int) -> None:
    """The execution row of the evaluation ``event`` (of a run), whose event-log ``row`` (Dagster's
    ``_event_to_row``) was stored as ``event_id`` on ``conn``, in ``conn``'s transaction."""
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
    key, name = evaluation.asset_key.to_string(), evaluation.check_name
    where = {"w_asset_key": key, "w_check_name": name, "w_run_id": event.run_id}
    if evaluation.partition is None:
        updated = conn.execute(_UPDATE_UNPARTITIONED, {**values, **where}).rowcount
    else:
        updated = conn.execute(_UPDATE, {**values, **where, "w_partition": evaluation.partition}).rowcount
    if updated == 0:  # no planned row: a check reported by an asset's step without a spec, as the clips step does
        conn.execute(_INSERT, {**values, "asset_key": key, "check_name": name, "run_id": event.run_id})
    elif updated > 1:
        raise DagsterInvariantViolationError(
            f"Updated {updated} rows for asset check evaluation {evaluation.asset_check_key} "
            "as a result of duplicate AssetCheckPlanned events."
        )
