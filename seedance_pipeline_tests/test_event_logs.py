"""seedance_pipeline/event_logs: Dagster's event logs keeping their connections between events.

Each test runs a real Dagster run of the clips asset's shape (one run over many partitions, a materialization
and an asset-check result per partition) on a real SQLite file instance or a real PostgreSQL server, and
counts the database connections the driver opened while the run stored its events. The stock class is
run beside ours where the difference is the claim, so the count can fail.
"""

from __future__ import annotations

import os
import sqlite3.dbapi2
import threading
from pathlib import Path
from unittest import mock

import dagster as dg
import psycopg2
import pytest
import sqlalchemy
import yaml
from dagster._core.events import DagsterEventType

from seedance_pipeline.defs.preview import accepting
from seedance_pipeline.event_logs.instance_config import embedded_instance_config, ensure_instance_config
from seedance_pipeline.event_logs.postgres import PooledPostgresEventLogStorage
from seedance_pipeline.event_logs.sqlite import PooledSqliteEventLogStorage
from seedance_pipeline.lineage.reported import report_materializations
from seedance_pipeline_tests.test_deploy_config import DEPLOY_YAML

PARTS = dg.StaticPartitionsDefinition([f"p{i:02d}" for i in range(30)])
THING = dg.AssetKey("thing")


# The same beta (backfill_policy) and preview (partitioned checks) features as the clips asset, accepted the same way.
with accepting(dg.BetaWarning, dg.PreviewWarning):

    @dg.asset(partitions_def=PARTS, output_required=False, backfill_policy=dg.BackfillPolicy.single_run())
    def thing(context):
        for key in context.partition_keys:
            yield dg.AssetMaterialization(asset_key=THING, partition=key)
            yield dg.AssetCheckEvaluation(asset_key=THING, check_name="ok", passed=True, partition=key)

    @dg.asset_check(asset=THING, name="ok", partitions_def=PARTS)
    def ok(context):  # as the clip checks: defined on its own, its results reported by the asset's step
        return dg.AssetCheckResult(passed=True)


JOB = dg.Definitions(
    assets=[thing],
    asset_checks=[ok],
    jobs=[dg.define_asset_job("thing_job", dg.AssetSelection.assets(THING).without_checks())],
).resolve_job_def("thing_job")
CONFIG = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


def _run_partitions(instance: dg.DagsterInstance, n: int = 30, job: dg.JobDefinition = JOB) -> tuple[str, int]:
    """One run of ``job`` over the first ``n`` partitions; (run id, events the run stored)."""
    keys = PARTS.get_partition_keys()[:n]
    result = job.execute_in_process(
        instance=instance,
        run_config=CONFIG,
        tags={"dagster/asset_partition_range_start": keys[0], "dagster/asset_partition_range_end": keys[-1]},
    )
    assert result.success
    return result.run_id, len(instance.all_logs(result.run_id))


def _stored(instance: dg.DagsterInstance, run_id: str) -> tuple[int, int, int]:
    def count(kind):
        return len(instance.get_records_for_run(run_id, of_type=kind, limit=10_000).records)

    return (
        count(DagsterEventType.ASSET_MATERIALIZATION_PLANNED),
        count(DagsterEventType.ASSET_MATERIALIZATION),
        count(DagsterEventType.ASSET_CHECK_EVALUATION),
    )


def _home(tmp_path: Path, text: str | None) -> Path:
    home = tmp_path / "home"
    if text is None:
        ensure_instance_config(home)
    else:
        home.mkdir()
        (home / "dagster.yaml").write_text(text)
    return home


def _connections_opened(module, run, where=lambda args: True):
    """How many connections ``module.connect`` (sqlite3.dbapi2 / psycopg2: what SQLAlchemy calls) opened in
    ``run()``, counting those whose arguments ``where`` accepts."""
    with mock.patch.object(module, "connect", wraps=module.connect) as connect:
        out = run()
    return sum(1 for call in connect.call_args_list if where(call.args)), out


# -- SQLite: the embedded default ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "config, pooled",
    [(None, True), ("telemetry:\n  enabled: false\n", False)],
    ids=["embedded-default", "dagster-stock"],
)
def test_sqlite_run_stores_its_events_over_two_connections(tmp_path, monkeypatch, config, pooled):
    home = _home(tmp_path, config)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with dg.DagsterInstance.get() as instance:
        assert isinstance(instance.event_log_storage, PooledSqliteEventLogStorage) is pooled
        _run_partitions(instance)  # first run: files and tables are created
        event_log = (
            f"{home / 'history' / 'runs'}/"  # history/runs.db (the run storage, Dagster's own class) not counted
        )
        opened, (run_id, events) = _connections_opened(
            sqlite3.dbapi2, lambda: _run_partitions(instance), where=lambda args: args[0].startswith(event_log)
        )
        assert _stored(instance, run_id) == (30, 30, 30)
    assert events >= 90
    if pooled:  # the new run's file: one connection, and one more while Dagster creates its tables
        assert opened <= 2, opened
    else:  # Dagster's own class: at least one per event, the run file and the index each
        assert opened >= 2 * 90, opened


def test_sqlite_files_commit_without_waiting_for_the_disk_in_wal_mode(tmp_path, monkeypatch):
    """Every connection the embedded default keeps (the index's and the run file's) has synchronous=NORMAL on a WAL
    file; a fresh sqlite3 connection to the same file has SQLite's default, FULL (the pragma is per connection)."""
    monkeypatch.setenv("DAGSTER_HOME", str(_home(tmp_path, None)))
    with dg.DagsterInstance.get() as instance:
        storage = instance.event_log_storage
        assert isinstance(storage, PooledSqliteEventLogStorage)
        run_id, _ = _run_partitions(instance)
        kept = dict(storage._kept)
        assert set(kept) == {"index", run_id}
        for shard, conn in kept.items():
            raw = conn.connection.driver_connection  # the sqlite3 connection itself: no SQLAlchemy transaction begun
            assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal", shard
            assert raw.execute("PRAGMA synchronous").fetchone()[0] == 1, shard  # NORMAL
            fresh = sqlite3.connect(storage.path_for_shard(shard))
            try:
                assert fresh.execute("PRAGMA synchronous").fetchone()[0] == 2, shard  # FULL
            finally:
                fresh.close()
        assert _stored(instance, run_id) == (30, 30, 30)


def test_sqlite_events_reach_a_run_file_deleted_and_recreated_behind_the_storage(tmp_path):
    """Another process deletes a run's file (``wipe``, a clean-up): the next event goes into a new file that
    everyone reads, not into the deleted one through a connection kept open."""
    base = tmp_path / "runs"
    ours = PooledSqliteEventLogStorage(str(base))
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        run_id, _ = _run_partitions(instance)
        entries = instance.all_logs(run_id)[:3]
    ours.store_event(entries[0])
    assert len(ours.get_logs_for_run(run_id)) == 1
    os.unlink(base / f"{run_id}.db")
    ours.store_event(entries[1])
    ours.store_event(entries[2])
    fresh = PooledSqliteEventLogStorage(str(base))  # a reader of its own, as the webserver would be
    assert [e.message for e in fresh.get_logs_for_run(run_id)] == [e.message for e in entries[1:]]
    ours.dispose()
    fresh.dispose()


def test_sqlite_two_storages_on_one_folder_see_each_others_events_at_once(tmp_path):
    """A run worker and the webserver each keep their connections open; neither holds a lock between events
    (a write is not refused as 'database is locked'), and each sees the other's commits at the next read."""
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        run_id, _ = _run_partitions(instance)
        entries = instance.all_logs(run_id)
    worker, webserver = (PooledSqliteEventLogStorage(str(tmp_path / "runs")) for _ in range(2))
    for i, entry in enumerate(entries[:20]):
        (worker if i % 2 else webserver).store_event(entry)
        for reader in (worker, webserver):
            assert len(reader.get_logs_for_run(run_id)) == i + 1
    planned = [e for e in entries if e.dagster_event_type == DagsterEventType.ASSET_MATERIALIZATION_PLANNED]
    # The index file too: the asset's planned partitions, stored by one, are read by the other.
    for entry in planned[:10]:
        worker.store_event(entry)
    info = webserver.get_latest_planned_materialization_info(THING, planned[9].dagster_event.partition)
    assert info is not None and info.run_id == run_id
    worker.dispose()
    webserver.dispose()


def test_sqlite_a_failed_statement_rolls_back_and_the_next_event_is_stored(tmp_path):
    storage = PooledSqliteEventLogStorage(str(tmp_path / "runs"))
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        run_id, _ = _run_partitions(instance, 2)
        entries = instance.all_logs(run_id)[:2]
    storage.store_event(entries[0])
    with pytest.raises(sqlalchemy.exc.OperationalError), storage.run_connection(run_id) as conn:
        conn.execute(sqlalchemy.text("DELETE FROM event_logs"))
        conn.execute(sqlalchemy.text("SELECT * FROM no_such_table"))
    storage.store_event(entries[1])
    assert [e.message for e in storage.get_logs_for_run(run_id)] == [e.message for e in entries]
    storage.dispose()


def test_sqlite_events_from_many_threads_are_all_stored(tmp_path):
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        run_id, _ = _run_partitions(instance)
        entries = instance.all_logs(run_id)
    storage = PooledSqliteEventLogStorage(str(tmp_path / "runs"))
    threads = [
        threading.Thread(target=lambda part=entries[i::4]: [storage.store_event(e) for e in part]) for i in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(storage.get_logs_for_run(run_id)) == len(entries)
    storage.dispose()


def test_sqlite_wipe_then_store(tmp_path, monkeypatch):
    monkeypatch.setenv("DAGSTER_HOME", str(_home(tmp_path, None)))
    with dg.DagsterInstance.get() as instance:
        first, _ = _run_partitions(instance)
        instance.wipe()
        assert instance.all_logs(first) == []
        second, _ = _run_partitions(instance)
        assert _stored(instance, second) == (30, 30, 30)


def _reported(instance: dg.DagsterInstance) -> tuple:
    """What Dagster reads back of THING's materializations: per partition its data version (from the event and from
    the tag index), run id and metadata, and the latest event's partition and run id."""
    latest = {}
    for r in reversed(instance.fetch_materializations(THING, limit=1000).records):  # newest last
        m = r.asset_materialization
        [indexed] = instance.get_event_tags_for_asset(THING, filter_event_id=r.storage_id)
        latest[m.partition] = (
            m.tags["dagster/data_version"],
            indexed["dagster/data_version"],
            r.run_id,
            m.metadata["n"].value,
        )
    last = instance.get_latest_materialization_event(THING)
    return latest, last.asset_materialization.partition, last.run_id


def _commits(run) -> int:
    commits = []
    listener = lambda conn: commits.append(1)  # noqa: E731
    sqlalchemy.event.listen(sqlalchemy.engine.Engine, "commit", listener)
    try:
        run()
    finally:
        sqlalchemy.event.remove(sqlalchemy.engine.Engine, "commit", listener)
    return len(commits)


def _report_both_ways(instance: dg.DagsterInstance, how: str) -> tuple[tuple, int]:
    """THING's 30 partitions reported without a run, ``how``: "dagster" one at a time, or "batched"; what reads
    back, and the commits it took (after the first event, which creates the files and tables)."""
    mats = [
        dg.AssetMaterialization(
            asset_key=THING, partition=key, metadata={"n": i}, tags={"dagster/data_version": f"v{i}"}
        )
        for i, key in enumerate(PARTS.get_partition_keys())
    ]
    instance.report_runless_asset_event(mats[0])
    if how == "dagster":
        commits = _commits(lambda: [instance.report_runless_asset_event(m) for m in mats[1:]])
    else:
        commits = _commits(lambda: report_materializations(instance, mats[1:], batch=1000))
    return _reported(instance), commits


def test_sqlite_batch_reads_back_as_dagster_stores_each_event_and_takes_two_commits(tmp_path, monkeypatch):
    """``report_materializations`` (how ``run`` registers images) against Dagster's own
    ``report_runless_asset_event`` of the same events, each on a fresh embedded-default instance: the same
    partitions, data versions, run ids, metadata, latest event and tag index; the batch in 2 commits (run file and
    index) where one at a time takes 2 an event."""
    seen = {}
    for how in ("dagster", "batched"):
        monkeypatch.setenv("DAGSTER_HOME", str(_home(tmp_path / how, None)))
        with dg.DagsterInstance.get() as instance:
            seen[how] = _report_both_ways(instance, how)
    assert seen["batched"][0] == seen["dagster"][0]
    assert seen["batched"][0][0]["p07"] == ("v7", "v7", "", 7) and seen["batched"][0][1:] == ("p29", "")
    assert seen["dagster"][1] >= 2 * 29 and seen["batched"][1] == 2, (seen["dagster"][1], seen["batched"][1])


def test_sqlite_batch_of_mixed_events_is_stored_an_event_at_a_time(tmp_path):
    """A batch that is not one asset's materializations of one run (here: two runs' events) takes Dagster's path."""
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        first, _ = _run_partitions(instance, 3)
        second, _ = _run_partitions(instance, 3)
        entries = [
            e
            for run_id in (first, second)
            for e in instance.all_logs(run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION)
        ]
    storage = PooledSqliteEventLogStorage(str(tmp_path / "mixed"))
    storage.store_event_batch(entries)
    assert [len(storage.get_logs_for_run(r)) for r in (first, second)] == [3, 3]
    storage.dispose()


JUDGED = dg.AssetKey("judged")
with accepting(dg.BetaWarning, dg.PreviewWarning):

    @dg.asset(partitions_def=PARTS, output_required=False, backfill_policy=dg.BackfillPolicy.single_run())
    def judged(context):  # as the clips step: a materialization, then checks reported without a spec, some failed
        for i, key in enumerate(context.partition_keys):
            yield dg.AssetMaterialization(asset_key=JUDGED, partition=key)
            for name in ("ok", "other"):
                yield dg.AssetCheckEvaluation(
                    asset_key=JUDGED, check_name=name, passed=i % 3 != 0, partition=key, metadata={"i": i}
                )

    @dg.asset(partitions_def=PARTS, check_specs=[dg.AssetCheckSpec("ok", asset="specced", partitions_def=PARTS)])
    def specced(context):  # a check with a spec: planned when the step starts, then the planned row is updated
        return dg.MaterializeResult(check_results=[dg.AssetCheckResult(passed=False, metadata={"again": True})])

    @dg.asset(check_specs=[dg.AssetCheckSpec("ok", asset="whole")])
    def whole(context):  # the same, unpartitioned
        return dg.MaterializeResult(check_results=[dg.AssetCheckResult(passed=True)])


JUDGED_DEFS = dg.Definitions(
    assets=[judged, specced, whole],
    jobs=[
        dg.define_asset_job("judged_job", dg.AssetSelection.assets(JUDGED).without_checks()),
        dg.define_asset_job("specced_job", dg.AssetSelection.assets("specced")),
        dg.define_asset_job("whole_job", dg.AssetSelection.assets("whole")),
    ],
)


def _target(data, runs: dict) -> tuple | None:
    return None if data is None else (data.storage_id, runs.get(data.run_id))


def _judge_and_check_alone(instance: dg.DagsterInstance) -> tuple[dict, list, int]:
    """One run reporting two checks on 12 partitions, then two assets whose checks have specs (planned when
    their step starts, then evaluated), partitioned and not. What the check tables read back: each check's history
    (status, partition, run, passed, metadata, the targeted materialization), and each partition's latest status as
    the UI reads it (with the index storage ids of its event and target); and the commits the first run's 24
    evaluations took."""
    keys = PARTS.get_partition_keys()[:12]
    tags = {"dagster/asset_partition_range_start": keys[0], "dagster/asset_partition_range_end": keys[-1]}
    commits = []
    storage = instance.event_log_storage
    real_store = storage.store_event

    def store(event):  # counts the commits of the evaluations only
        judged = event.dagster_event_type == DagsterEventType.ASSET_CHECK_EVALUATION
        before = _commits(lambda: real_store(event)) if judged else real_store(event)
        if judged:
            commits.append(before)

    with mock.patch.object(storage, "store_event", store):
        first = JUDGED_DEFS.resolve_job_def("judged_job").execute_in_process(
            instance=instance, run_config=CONFIG, tags=tags
        )
    second = JUDGED_DEFS.resolve_job_def("specced_job").execute_in_process(
        instance=instance, run_config=CONFIG, partition_key="p04"
    )
    third = JUDGED_DEFS.resolve_job_def("whole_job").execute_in_process(instance=instance, run_config=CONFIG)
    assert first.success and second.success and third.success
    runs = {first.run_id: "first", second.run_id: "specced", third.run_id: "whole"}
    history = {}
    checks = [dg.AssetCheckKey(JUDGED, "ok"), dg.AssetCheckKey(JUDGED, "other")]
    checks += [dg.AssetCheckKey(dg.AssetKey(name), "ok") for name in ("specced", "whole")]
    for key in checks:
        history[key] = [
            (
                r.status.value,
                r.partition,
                runs[r.run_id],
                r.event.dagster_event.event_specific_data.passed,
                {k: v.value for k, v in r.event.dagster_event.event_specific_data.metadata.items()},
                _target(r.event.dagster_event.event_specific_data.target_materialization_data, runs),
            )
            for r in storage.get_asset_check_execution_history(key, limit=100)
        ]
    infos = storage.get_asset_check_partition_info(checks)
    latest = sorted(
        (
            i.check_key.to_user_string(),
            i.partition_key,
            i.latest_execution_status.value,
            runs[i.latest_planned_run_id],
            i.latest_check_event_storage_id,
            i.latest_target_materialization_storage_id,
            i.is_current,
        )
        for i in infos
    )
    entries = {
        str(r.asset_entry.asset_key.to_user_string()): (
            r.asset_entry.last_materialization_storage_id,
            runs.get(r.asset_entry.last_run_id),
            r.asset_entry.last_planned_materialization_storage_id,
            runs.get(r.asset_entry.last_planned_materialization_run_id),
            r.asset_entry.last_event_storage_id,
        )
        for r in storage.get_asset_records([JUDGED, dg.AssetKey("specced"), dg.AssetKey("whole")])
    }
    return (history, entries), latest, sum(commits)


def test_sqlite_check_evaluations_read_back_as_dagster_stores_them_in_fewer_commits(tmp_path, monkeypatch):
    """Check evaluations of a run (reported by the asset's step without a spec, and planned ones) on a fresh
    embedded-default instance and on Dagster's own SQLite event log: the same history, statuses, partitions, runs,
    metadata, asset rows and index storage ids (both instances store the same events in the same order); two commits an
    evaluation where Dagster takes three."""
    seen = {}
    for name, config in (("dagster", "telemetry:\n  enabled: false\n"), ("ours", None)):
        (tmp_path / name).mkdir()
        monkeypatch.setenv("DAGSTER_HOME", str(_home(tmp_path / name, config)))
        with dg.DagsterInstance.get() as instance:
            assert isinstance(instance.event_log_storage, PooledSqliteEventLogStorage) is (name == "ours")
            seen[name] = _judge_and_check_alone(instance)
    assert seen["ours"][:2] == seen["dagster"][:2]
    (history, entries), latest, _ = seen["ours"]
    # the assets' rows (updated in place after the first event, where Dagster inserts and updates on the error)
    assert entries["judged"][1] == "first" and entries["judged"][0] is not None and entries["whole"][1] == "whole"
    ok, other, specced, whole = history.values()
    assert len(ok) == len(other) == 12 and [h[0] for h in other[::-1][:4]] == [
        "FAILED",
        "SUCCEEDED",
        "SUCCEEDED",
        "FAILED",
    ]
    assert other[0][1:5] == ("p11", "first", True, {"i": 11})
    assert [h[:5] for h in specced] == [("FAILED", "p04", "specced", False, {"again": True})]
    assert [h[:5] for h in whole] == [("SUCCEEDED", None, "whole", True, {})]
    assert len(latest) == 26 and ("judged:other", "p03", "FAILED", "first") in [i[:4] for i in latest]
    assert (seen["dagster"][2], seen["ours"][2]) == (3 * 24, 2 * 24)


def _planned_read_back(instance: dg.DagsterInstance, run_id: str) -> tuple:
    """What Dagster reads of THING's planned partitions: the run each is planned in, and the asset's latest
    planned event."""
    storage = instance.event_log_storage
    planned = {
        key: (info.run_id == run_id) if (info := storage.get_latest_planned_materialization_info(THING, key)) else None
        for key in PARTS.get_partition_keys()
    }
    [record] = storage.get_asset_records([THING])
    last = record.asset_entry.last_planned_materialization_storage_id
    return planned, last is not None, instance.get_records_for_run(run_id, limit=1000).records[-1].storage_id > 0


def _store_planned(instance: dg.DagsterInstance, job: dg.JobDefinition = JOB) -> tuple:
    """A run of ``job`` over 20 partitions: what reads back of its planned events, how many planned materializations
    were stored one at a time, the sizes of the batches stored, and the commits the planned events took."""
    _run_partitions(instance, 3)  # the files and tables exist
    storage = instance.event_log_storage
    planned_singly, batches, commits = 0, [], []
    store, store_batch = storage.store_event, storage.store_event_batch

    def one(event):
        nonlocal planned_singly
        if event.dagster_event_type != DagsterEventType.ASSET_MATERIALIZATION_PLANNED:
            return store(event)
        planned_singly += 1
        commits.append(_commits(lambda: store(event)))

    def many(events):
        batches.append(len(events))
        commits.append(_commits(lambda: store_batch(events)))

    with mock.patch.object(storage, "store_event", one), mock.patch.object(storage, "store_event_batch", many):
        _run_partitions(instance, 20, job)
    run_id = instance.get_runs(limit=1)[0].run_id
    return _planned_read_back(instance, run_id), planned_singly, batches, sum(commits)


def test_sqlite_a_runs_planned_events_are_stored_in_one_batch_in_every_process_on_the_project_config(
    tmp_path, monkeypatch
):
    """A run's 20 planned events reach the embedded default's ``store_event_batch`` at once and are stored in two
    commits (run file and index), not one event at a time: in the CLI's process (``dagster_instance``) and in any
    process whose instance is built from the project's config, as ``dagster dev``'s webserver and daemon build theirs
    (``DagsterInstance.get``); the event log asks for it (DAGSTER_EVENT_BATCH_SIZE). Dagster reads back the same
    planned partitions as from its own SQLite class, which stores them one at a time."""
    from seedance_pipeline.cli.runner import dagster_instance
    from seedance_pipeline.event_logs import PLANNED_EVENT_BATCH

    seen = {}
    for how, config in (("dagster", "telemetry:\n  enabled: false\n"), ("cli", None), ("webserver", None)):
        (tmp_path / how).mkdir()
        monkeypatch.setenv("DAGSTER_HOME", str(_home(tmp_path / how, config)))
        monkeypatch.delenv("DAGSTER_EVENT_BATCH_SIZE", raising=False)
        with dagster_instance() if how == "cli" else dg.DagsterInstance.get() as instance:
            assert isinstance(instance.event_log_storage, PooledSqliteEventLogStorage) is (how != "dagster")
            assert os.environ.get("DAGSTER_EVENT_BATCH_SIZE") == (None if how == "dagster" else PLANNED_EVENT_BATCH)
            seen[how] = _store_planned(instance)
    assert seen["cli"][0] == seen["webserver"][0] == seen["dagster"][0]
    assert sum(1 for v in seen["cli"][0][0].values() if v) == 20
    assert seen["dagster"][1:3] == (20, [])
    assert seen["cli"][1:3] == seen["webserver"][1:3] == (0, [20])
    # Run file and index: two commits an event, or two for the batch (creating the run's file takes the same either way)
    for how in ("cli", "webserver"):
        assert seen["dagster"][3] - seen[how][3] == 2 * 20 - 2, (how, seen["dagster"][3], seen[how][3])


def test_sqlite_default_folder_needs_dagster_home(tmp_path, monkeypatch):
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    with pytest.raises(ValueError, match=r"event_log_storage\.config\.base_dir: not set, and DAGSTER_HOME"):
        PooledSqliteEventLogStorage.from_config_value(None, {})
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    storage = PooledSqliteEventLogStorage.from_config_value(None, {})
    assert (tmp_path / "history" / "runs" / "index.db").exists()  # where Dagster's own default puts it
    storage.dispose()


def test_embedded_default_is_what_make_and_run_write(tmp_path):
    config = ensure_instance_config(tmp_path / "h")
    assert yaml.safe_load(config.read_text()) == embedded_instance_config(tmp_path / "h")
    with dg.DagsterInstance.from_config(str(tmp_path / "h")) as instance:  # no DAGSTER_HOME needed
        assert isinstance(instance.event_log_storage, PooledSqliteEventLogStorage)
    assert (tmp_path / "h" / "history" / "runs" / "index.db").exists()
    config.write_text("telemetry:\n  enabled: true\n")
    ensure_instance_config(tmp_path / "h")  # an existing file is the user's: kept
    assert yaml.safe_load(config.read_text()) == {"telemetry": {"enabled": True}}


# -- PostgreSQL: deploy/dagster.yaml ---------------------------------------------------------------------------


def _pg_home(tmp_path: Path, stock: bool) -> Path:
    home = tmp_path / ("stock" if stock else "deploy")
    home.mkdir()
    config = yaml.safe_load(DEPLOY_YAML.read_text())
    if stock:  # dagster-postgres' own event log, everything else as deployed
        config["event_log_storage"].update({"module": "dagster_postgres.event_log", "class": "PostgresEventLogStorage"})
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    return home


@pytest.mark.parametrize("stock", [False, True], ids=["deploy-yaml", "dagster-postgres-stock"])
def test_postgres_connections_do_not_grow_with_the_events_a_run_stores(tmp_path, pg_server, monkeypatch, stock):
    db = pg_server.create_database(f"event_log_{'stock' if stock else 'pooled'}")
    for name, value in pg_server.dagster_env(db).items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("DAGSTER_EVENT_BATCH_SIZE", raising=False)
    with dg.DagsterInstance.from_config(str(_pg_home(tmp_path, stock))) as instance:
        # Our class asks Dagster for batches of planned events in every process that builds it (event_logs/__init__.py)
        assert isinstance(instance.event_log_storage, PooledPostgresEventLogStorage) is not stock
        assert ("DAGSTER_EVENT_BATCH_SIZE" in os.environ) is not stock
        _run_partitions(instance)
        # The run storage (dagster-postgres' own class) opens a fixed number per run; the event log's part
        # is what 20 more partitions (60 more events: planned, materialization, check) add.
        small, (_, small_events) = _connections_opened(psycopg2, lambda: _run_partitions(instance, 10))
        large, (run_id, large_events) = _connections_opened(psycopg2, lambda: _run_partitions(instance, 30))
        assert _stored(instance, run_id) == (30, 30, 30)
    assert large_events - small_events >= 60
    if stock:  # one per event
        assert large - small >= 60, (small, large)
    else:
        assert large - small <= 1, (small, large)


def test_postgres_batch_reads_back_as_dagster_stores_each_event(tmp_path, pg_server, monkeypatch):
    """``report_materializations`` on the production instance (dagster-postgres' own ``store_event_batch``,
    under our pooled class): the same reads as Dagster's one-at-a-time runless path, in a few commits."""
    seen = {}
    for how in ("dagster", "batched"):
        for name, value in pg_server.dagster_env(pg_server.create_database(f"event_log_{how}")).items():
            monkeypatch.setenv(name, value)
        (tmp_path / how).mkdir()
        with dg.DagsterInstance.from_config(str(_pg_home(tmp_path / how, False))) as instance:
            seen[how] = _report_both_ways(instance, how)
    assert seen["batched"][0] == seen["dagster"][0]
    assert seen["batched"][0][0]["p07"] == ("v7", "v7", "", 7) and seen["batched"][0][1:] == ("p29", "")
    assert seen["dagster"][1] >= 29 and seen["batched"][1] <= 3, (seen["dagster"][1], seen["batched"][1])


def test_postgres_check_evaluations_read_back_as_dagster_postgres_stores_them(tmp_path, pg_server, monkeypatch):
    """The same runs as the SQLite comparison on the production instance (``deploy/dagster.yaml``) and on
    dagster-postgres' own class: the same history, statuses, asset rows and storage ids."""
    seen = {}
    for stock in (True, False):
        db = pg_server.create_database(f"checks_{'stock' if stock else 'pooled'}")
        for name, value in pg_server.dagster_env(db).items():
            monkeypatch.setenv(name, value)
        with dg.DagsterInstance.from_config(str(_pg_home(tmp_path, stock))) as instance:
            seen[stock] = _judge_and_check_alone(instance)[:2]
    assert seen[False] == seen[True]
    (history, _), latest = seen[False]
    assert [h[:5] for h in history[dg.AssetCheckKey(dg.AssetKey("specced"), "ok")]] == [
        ("FAILED", "p04", "specced", False, {"again": True})
    ]
    assert len(latest) == 26


def test_postgres_event_log_reconnects_after_the_server_drops_its_connection(tmp_path, pg_server, monkeypatch):
    db = pg_server.create_database("event_log_dropped")
    for name, value in pg_server.dagster_env(db).items():
        monkeypatch.setenv(name, value)
    with dg.DagsterInstance.from_config(str(_pg_home(tmp_path, False))) as instance:
        _run_partitions(instance)  # the pool now holds an open connection
        admin = pg_server.connect(db)
        try:
            admin.autocommit = True
            with admin.cursor() as cur:
                cur.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = %s AND pid <> pg_backend_pid()",
                    (db,),
                )
                assert cur.rowcount >= 1
        finally:
            admin.close()
        run_id, _ = _run_partitions(instance)
        assert _stored(instance, run_id) == (30, 30, 30)
