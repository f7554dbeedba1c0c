"""seedance_pipeline/event_logs/statements.py: the embedded default's materializations and check evaluations, stored
through statements compiled once and run on the sqlite3 connection, leave the rows Dagster's own SQLite event log
leaves, column for column, in every table they touch.

The events are a real run's (a clips-shaped asset: per partition a materialization with tags and metadata, then
check evaluations reported without a spec, some failed; and an asset whose check has a spec, so its planned row is
updated), stored one at a time into a fresh folder by Dagster's class and by ours; the files are then read with
sqlite3 directly."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import dagster as dg
import pytest

from seedance_pipeline.dagster_internals import SqliteEventLogStorage
from seedance_pipeline.defs.preview import accepting
from seedance_pipeline.event_logs.sqlite import PooledSqliteEventLogStorage
from seedance_pipeline.event_logs.statements import Statements

PARTS = dg.StaticPartitionsDefinition([f"p{i}" for i in range(6)])
CLIP = dg.AssetKey("clip")
# Columns that hold the time a row was written (the database's CURRENT_TIMESTAMP; the time Dagster created its
# secondary indexes): they differ between any two stores.
SERVER_SET = {"create_timestamp", "update_timestamp", "migration_completed"}

with accepting(dg.BetaWarning, dg.PreviewWarning):

    @dg.asset(partitions_def=PARTS, output_required=False, backfill_policy=dg.BackfillPolicy.single_run())
    def clip(context):
        for i, key in enumerate(context.partition_keys):
            yield dg.AssetMaterialization(
                asset_key=CLIP,
                partition=key,
                metadata={"n": i, "cost_usd": dg.MetadataValue.float(0.25 * i), "path": dg.MetadataValue.path("/x")},
                tags={"dagster/data_version": f"v{i}", "seedance/provider": "novita"},
            )
            for name in ("plays", "looks"):
                yield dg.AssetCheckEvaluation(
                    asset_key=CLIP, check_name=name, passed=i % 2 == 0, partition=key, metadata={"i": i}
                )

    @dg.asset(check_specs=[dg.AssetCheckSpec("ok", asset="whole")])
    def whole(context):
        return dg.MaterializeResult(check_results=[dg.AssetCheckResult(passed=False, metadata={"again": True})])


DEFS = dg.Definitions(
    assets=[clip, whole],
    jobs=[
        dg.define_asset_job("clip_job", dg.AssetSelection.assets(CLIP).without_checks()),
        dg.define_asset_job("whole_job", dg.AssetSelection.assets("whole")),
    ],
)
CONFIG = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


@pytest.fixture(scope="module")
def entries(tmp_path_factory) -> list:
    """Every event of two real runs, in the order they were stored."""
    with dg.instance_for_test(temp_dir=str(tmp_path_factory.mktemp("source"))) as instance:
        keys = PARTS.get_partition_keys()
        tags = {"dagster/asset_partition_range_start": keys[0], "dagster/asset_partition_range_end": keys[-1]}
        runs = [
            DEFS.resolve_job_def("clip_job").execute_in_process(instance=instance, run_config=CONFIG, tags=tags),
            DEFS.resolve_job_def("whole_job").execute_in_process(instance=instance, run_config=CONFIG),
        ]
        assert all(r.success for r in runs)
        return [e for r in runs for e in instance.all_logs(r.run_id)]


def _rows(folder: Path) -> dict[str, dict[str, list[dict]]]:
    """file -> table -> every row (columns the database sets left out), in the order stored."""
    out: dict[str, dict[str, list[dict]]] = {}
    for path in sorted(folder.glob("*.db")):
        db = sqlite3.connect(path)
        tables = [t for (t,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        out[path.name] = {}
        for table in tables:
            columns = [c[1] for c in db.execute(f'PRAGMA table_info("{table}")') if c[1] not in SERVER_SET]
            select = ", ".join(f'"{c}"' for c in columns)
            rows = db.execute(f'SELECT {select} FROM "{table}" ORDER BY rowid')
            out[path.name][table] = [dict(zip(columns, row, strict=True)) for row in rows]
        db.close()
    return out


def test_materializations_and_evaluations_leave_the_rows_dagster_leaves(entries, tmp_path):
    kinds = {e.dagster_event_type for e in entries if e.dagster_event_type}
    assert {dg.DagsterEventType.ASSET_MATERIALIZATION, dg.DagsterEventType.ASSET_CHECK_EVALUATION} <= kinds
    for name, cls in (("dagster", SqliteEventLogStorage), ("ours", PooledSqliteEventLogStorage)):
        storage = cls(str(tmp_path / name))
        for entry in entries:
            storage.store_event(entry)
        storage.dispose()
    dagster, ours = _rows(tmp_path / "dagster"), _rows(tmp_path / "ours")
    assert ours == dagster
    index = ours["index.db"]
    # What the comparison covered: the tag index, the asset rows, the evaluations (inserted, and the planned one
    # updated), each with rows in it.
    # (Dagster indexes the dagster/ tags: each clip partition's data version.)
    assert sum(row["asset_key"] == '["clip"]' for row in index["asset_event_tags"]) == len(PARTS.get_partition_keys())
    assert {row["asset_key"] for row in index["asset_keys"]} >= {'["clip"]', '["whole"]'}
    statuses = sorted(row["execution_status"] for row in index["asset_check_executions"])
    assert statuses == ["FAILED"] * 7 + ["SUCCEEDED"] * 6, statuses


def test_a_datetime_is_written_in_the_text_sqlalchemy_writes():
    """The bind processor comes from the column's type for the dialect: SQLite's DATETIME text, microseconds
    always written."""
    import datetime

    from sqlalchemy import Column, DateTime, Integer, MetaData, Table
    from sqlalchemy.dialects import sqlite as sqlite_dialect
    from sqlalchemy.engine import create_engine

    table = Table("t", MetaData(), Column("id", Integer, primary_key=True), Column("at", DateTime))
    engine = create_engine("sqlite://")
    table.metadata.create_all(engine)
    sql = Statements(sqlite_dialect.dialect())
    with engine.connect() as conn, conn.begin():
        assert sql.insert(conn, table, {"at": None}) == 1
        sql.insert(conn, table, {"at": datetime.datetime(2026, 12, 7, 13, 0, 0)})  # sqlite3 alone: no microseconds
        # where None is IS NULL (= NULL finds no row)
        assert sql.update(conn, table, {"at": datetime.datetime(2026, 1, 2, 3, 4, 5, 6)}, {"at": None}) == 1
        rows = conn.exec_driver_sql("SELECT id, at FROM t ORDER BY id").all()
    assert rows == [(1, "2026-01-02 03:04:05.000006"), (2, "2026-12-07 13:00:00.000000")]
