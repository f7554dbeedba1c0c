"""seedance_pipeline/event_logs/checks.py: a run that includes an asset's checks plans them per partition.

The run is shaped as an asset backfill's run of the clips asset (and the UI's Materialize) is: one run over many
partitions whose selection includes the asset's standalone checks, the asset's step reporting one of them for
every partition, the other never reported. It runs on a real SQLite instance and a real PostgreSQL server, on the
project's event log and on Dagster's own, and the check tables are read back through Dagster's own queries.
"""

from __future__ import annotations

import json

import dagster as dg
import pytest
from dagster._core.definitions.asset_checks.asset_check_evaluation import AssetCheckEvaluationPlanned
from dagster._core.definitions.partitions.subset.default import DefaultPartitionsSubset
from dagster._core.events import DagsterEvent, DagsterEventType
from dagster._core.events.log import EventLogEntry

from seedance_pipeline.dagster_internals import AssetCheckExecutionsTable
from seedance_pipeline.defs.preview import accepting
from seedance_pipeline.event_logs.checks import PlannedRowPerPartition, planned_rows
from seedance_pipeline_tests.test_event_logs import PARTS, _home, _pg_home, _run_partitions, _store_planned

THING = dg.AssetKey("thing")
OK, UNREPORTED = dg.AssetCheckKey(THING, "ok"), dg.AssetCheckKey(THING, "unreported")

with accepting(dg.BetaWarning, dg.PreviewWarning):

    @dg.asset(partitions_def=PARTS, output_required=False, backfill_policy=dg.BackfillPolicy.single_run())
    def thing(context):  # as the clips step: its checks' results reported for every partition it stores
        for key in context.partition_keys:
            yield dg.AssetMaterialization(asset_key=THING, partition=key)
            yield dg.AssetCheckEvaluation(asset_key=THING, check_name="ok", passed=key != "p03", partition=key)

    @dg.asset_check(asset=THING, name="ok", partitions_def=PARTS)
    def ok(context):
        return dg.AssetCheckResult(passed=True)

    @dg.asset_check(asset=THING, name="unreported", partitions_def=PARTS)
    def unreported(context):  # planned, never run: the run's step skips it, nothing reports it
        return dg.AssetCheckResult(passed=True)


# The selection includes the checks, as a backfill's run and the UI's Materialize do (the CLI's clips_job does not).
JOB = dg.Definitions(
    assets=[thing], asset_checks=[ok, unreported], jobs=[dg.define_asset_job("with_checks", [THING])]
).resolve_job_def("with_checks")


def _run_with_checks(instance: dg.DagsterInstance, n: int) -> str:
    return _run_partitions(instance, n, JOB)[0]


def _planned_events(instance: dg.DagsterInstance) -> dict[tuple[str, str | None], int]:
    """(check, partition) -> the number of partitions in the planned event that row carries, for every row still
    PLANNED."""
    with instance.event_log_storage.index_connection() as conn:
        rows = conn.execute(
            AssetCheckExecutionsTable.select().where(AssetCheckExecutionsTable.c.execution_status == "PLANNED")
        ).fetchall()
    out = {}
    for row in rows:
        planned = dg.deserialize_value(row.evaluation_event, EventLogEntry).dagster_event.asset_check_planned_data
        assert planned.partitions_subset is not None
        keys = set(planned.partitions_subset.get_partition_keys())
        assert row.partition in keys
        out[(row.check_name, row.partition)] = len(keys)
    return out


def _read_back(instance: dg.DagsterInstance, n: int) -> tuple:
    """What Dagster reads of both checks after one run over ``n`` partitions: each check's history (status,
    partition, passed, index storage id of its event) and each partition's latest status as the UI reads it."""
    _run_with_checks(instance, n)
    storage = instance.event_log_storage
    history = {
        key.name: [
            (
                r.status.value,
                r.partition,
                r.event.dagster_event_type.value,
                r.event.dagster_event.event_specific_data.check_name,
                getattr(r.event.dagster_event.event_specific_data, "passed", None),
            )
            for r in storage.get_asset_check_execution_history(key, limit=100)
        ]
        for key in (OK, UNREPORTED)
    }
    latest = sorted(
        (i.check_key.name, i.partition_key, i.latest_execution_status.value, i.latest_check_event_storage_id)
        for i in storage.get_asset_check_partition_info([OK, UNREPORTED])
    )
    return history, latest


def _compare(instances: dict[str, dg.DagsterInstance], n: int = 12) -> None:
    ours, stock = (instances[k] for k in ("ours", "stock"))
    assert isinstance(ours.event_log_storage, PlannedRowPerPartition)
    assert not isinstance(stock.event_log_storage, PlannedRowPerPartition)
    seen = {how: _read_back(instance, n) for how, instance in instances.items()}
    assert seen["ours"] == seen["stock"]
    history, latest = seen["ours"]
    assert len(history["ok"]) == n and ("FAILED", "p03", "ASSET_CHECK_EVALUATION", "ok", False) in history["ok"]
    assert sorted(history["unreported"]) == [
        ("PLANNED", f"p{i:02d}", "ASSET_CHECK_EVALUATION_PLANNED", "unreported", None) for i in range(n)
    ]
    assert ("unreported", "p05", "PLANNED") in [i[:3] for i in latest] and len(latest) == 2 * n
    # The difference: a planned row carries its own partition's planned event, not the run's whole subset.
    assert _planned_events(ours) == {("unreported", f"p{i:02d}"): 1 for i in range(n)}
    assert _planned_events(stock) == {("unreported", f"p{i:02d}"): n for i in range(n)}


@pytest.fixture
def sqlite_pair(tmp_path):
    """A fresh instance on Dagster's own SQLite event log ("stock") and one on the embedded default ("ours")."""
    instances = {}
    for how, config in (("stock", "telemetry:\n  enabled: false\n"), ("ours", None)):
        (tmp_path / how).mkdir()
        instances[how] = dg.DagsterInstance.from_config(str(_home(tmp_path / how, config)))
    yield instances
    for instance in instances.values():
        instance.dispose()


@pytest.fixture
def postgres_pair(tmp_path, pg_server, monkeypatch, request):
    """The same on a real PostgreSQL server: dagster-postgres' own event log and ``deploy/dagster.yaml``'s."""
    instances = {}
    for how in ("stock", "ours"):
        db = pg_server.create_database(f"{request.node.name[-30:].lower()}_{how}")
        for name, value in pg_server.dagster_env(db).items():
            monkeypatch.setenv(name, value)
        (tmp_path / how).mkdir()
        instances[how] = dg.DagsterInstance.from_config(str(_pg_home(tmp_path / how, how == "stock")))
    yield instances
    for instance in instances.values():
        instance.dispose()


def test_sqlite_planned_checks_read_back_as_dagster_stores_them_each_row_with_its_own_partition(sqlite_pair):
    _compare(sqlite_pair)


def test_postgres_planned_checks_read_back_as_dagster_postgres_stores_them(postgres_pair):
    _compare(postgres_pair)


def _mixed_batches(instances: dict[str, dg.DagsterInstance]) -> dict[str, tuple]:
    """The run over 20 partitions with the checks: Dagster hands the event log one batch holding the 20 planned
    materializations, then the two planned checks (``event_logs/batches.py``)."""
    seen = {how: _store_planned(instance, JOB) for how, instance in instances.items()}
    assert seen["ours"][0] == seen["stock"][0]  # the same planned partitions, runs and latest planned event read back
    assert sum(1 for v in seen["ours"][0][0].values() if v) == 20
    assert seen["stock"][1:3] == (20, [22])  # the stock classes store that batch an event at a time
    assert seen["ours"][1:3] == (0, [22])  # ours: the 20 at once, the two checks after them
    return seen


def test_sqlite_a_batch_of_planned_events_and_planned_checks_stores_the_events_at_once(sqlite_pair, monkeypatch):
    monkeypatch.setenv("DAGSTER_EVENT_BATCH_SIZE", "1000")
    seen = _mixed_batches(sqlite_pair)
    # two commits an event (run file and index) against two for the 20; the stock class also commits more a check
    assert seen["stock"][3] - seen["ours"][3] >= 2 * 20 - 2, (seen["stock"][3], seen["ours"][3])


def test_postgres_a_runs_planned_events_are_stored_at_once_where_dagster_postgres_stores_each(
    postgres_pair, monkeypatch
):
    monkeypatch.setenv("DAGSTER_EVENT_BATCH_SIZE", "1000")
    _mixed_batches(postgres_pair)
    # and a run without the checks: its batch holds the planned materializations alone
    alone = {how: _store_planned(instance) for how, instance in postgres_pair.items()}
    assert alone["ours"][0] == alone["stock"][0]
    assert alone["stock"][1:3] == (20, [20]) and alone["ours"][1:3] == (0, [20])


def test_sqlite_a_planned_rows_size_does_not_grow_with_the_runs_partitions(sqlite_pair):
    """Dagster's planned row carries every partition of the run (7 x N rows of N keys for the clips asset): ours
    carries one, so a row is as long for a run of 30 partitions as for a run of 10 (but for its timestamp's digits)."""
    sizes = {}
    for how, instance in sqlite_pair.items():
        for n in (10, 30):
            run_id = _run_with_checks(instance, n)
            with instance.event_log_storage.index_connection() as conn:
                events = conn.execute(
                    AssetCheckExecutionsTable.select().where(
                        AssetCheckExecutionsTable.c.run_id == run_id,
                        AssetCheckExecutionsTable.c.execution_status == "PLANNED",
                    )
                ).fetchall()
            assert len(events) == n
            sizes[how, n] = max(len(row.evaluation_event) for row in events)
    assert abs(sizes["ours", 30] - sizes["ours", 10]) <= 4  # the digits of the event's timestamp
    assert sizes["stock", 30] - sizes["stock", 10] >= 20 * len('"p00", ') - 4  # 20 more keys in every row


def _planned(subset) -> EventLogEntry:
    event = DagsterEvent(
        event_type_value=DagsterEventType.ASSET_CHECK_EVALUATION_PLANNED.value,
        job_name="j",
        message='j intends to execute asset check c on asset ["a"]',
        event_specific_data=AssetCheckEvaluationPlanned(
            asset_key=dg.AssetKey("a"), check_name="c", partitions_subset=subset
        ),
        step_key="a_c",
    )
    return EventLogEntry(
        error_info=None,
        level=10,
        user_message="",
        run_id="r",
        timestamp=1.0,
        step_key="a_c",
        job_name="j",
        dagster_event=event,
    )


def _each_alone(event: EventLogEntry, key: str, subset) -> str:
    """The event with its subset replaced by ``subset``, serialized by Dagster: what a row must carry."""
    data = AssetCheckEvaluationPlanned(asset_key=dg.AssetKey("a"), check_name="c", partitions_subset=subset)
    return dg.serialize_value(event._replace(dagster_event=event.dagster_event._replace(event_specific_data=data)))


@pytest.mark.parametrize(
    "keys", [["plain", 'quo"te', "back\\slash", "ünï|cödé", "tab\there", "\x00nul"]], ids=["awkward-keys"]
)
def test_a_rows_event_is_dagsters_serialization_of_the_event_narrowed_to_its_partition(keys):
    event = _planned(DefaultPartitionsSubset(set(keys)))
    rows = planned_rows(event, 7, "ts")
    assert sorted(r["partition"] for r in rows) == sorted(keys)
    for row in rows:
        assert row["evaluation_event"] == _each_alone(
            event, row["partition"], DefaultPartitionsSubset({row["partition"]})
        )
        assert json.loads(row["evaluation_event"])["run_id"] == "r"
        assert {k: row[k] for k in ("asset_key", "check_name", "run_id", "execution_status")} == {
            "asset_key": '["a"]',
            "check_name": "c",
            "run_id": "r",
            "execution_status": "PLANNED",
        }
        assert (row["evaluation_event_storage_id"], row["evaluation_event_timestamp"]) == (7, "ts")


def test_a_time_window_subset_is_narrowed_a_row_at_a_time():
    daily = dg.DailyPartitionsDefinition(start_date="2026-01-01")
    keys = ["2026-01-02", "2026-01-03", "2026-01-05"]
    event = _planned(daily.subset_with_partition_keys(keys).to_serializable_subset())
    rows = planned_rows(event, None, "ts")
    assert sorted(r["partition"] for r in rows) == keys
    for row in rows:
        narrowed = daily.subset_with_partition_keys([row["partition"]]).to_serializable_subset()
        assert row["evaluation_event"] == _each_alone(event, row["partition"], narrowed)


def test_an_unpartitioned_planned_check_is_one_row_with_the_event_as_it_is():
    event = _planned(None)
    [row] = planned_rows(event, 3, "ts")
    assert row["partition"] is None and row["evaluation_event"] == dg.serialize_value(event)
