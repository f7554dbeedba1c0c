"""The upgrade test: every private Dagster name in seedance_pipeline/dagster_internals.py still exists and still
means what the package assumes. When one of these fails after a Dagster upgrade, read the name's line in
dagster_internals.py and the README's "Dagster features we rely on" before touching anything else."""

from __future__ import annotations

import inspect
from pathlib import Path

import dagster as dg

from seedance_pipeline import dagster_internals as di

PACKAGE = Path(__file__).resolve().parent.parent / "seedance_pipeline"


def test_every_name_is_still_importable():
    assert all(getattr(di, name) is not None for name in di.__all__)


def test_no_other_module_imports_a_private_dagster_name():
    offenders = [
        f"{path.relative_to(PACKAGE)}:{n}: {line.strip()}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.name != "dagster_internals.py"
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if line.lstrip().startswith(("from dagster._", "import dagster._", "from dagster_postgres._"))
    ]
    assert not offenders, "\n".join(offenders)


def test_the_provenance_tags_are_the_ones_dagster_writes_and_reads():
    # lineage/versions.py writes these on every per-partition materialization; Dagster's stale-status
    # resolver reads them (test_pipeline.py::test_prompt_edit_marks_and_remakes_exactly_its_clips runs it).
    assert di.DATA_VERSION_TAG == "dagster/data_version"
    assert di.CODE_VERSION_TAG == "dagster/code_version"
    assert di.DATA_VERSION_IS_USER_PROVIDED_TAG == "dagster/data_version_is_user_provided"
    assert di.get_input_data_version_tag(dg.AssetKey("prompts")) == "dagster/input_data_version/prompts"
    assert di.get_input_event_pointer_tag(dg.AssetKey("prompts")) == "dagster/input_event_pointer/prompts"
    key = dg.MultiPartitionKey({"image": "cat", "prompt": "dawn"})
    assert di.get_tags_from_multi_partition_key(key) == {
        "dagster/partition/image": "cat",
        "dagster/partition/prompt": "dawn",
    }


def test_the_logical_version_depends_on_the_code_and_every_input():
    inputs = {dg.AssetKey("a"): dg.DataVersion("1"), dg.AssetKey("b"): dg.DataVersion("2")}
    same = di.compute_logical_data_version("1", dict(inputs))
    assert same == di.compute_logical_data_version("1", inputs)
    assert same != di.compute_logical_data_version("2", inputs)
    assert same != di.compute_logical_data_version("1", {**inputs, dg.AssetKey("b"): dg.DataVersion("3")})


def test_a_run_tagged_with_a_range_covers_that_range():
    assert di.ASSET_PARTITION_RANGE_START_TAG == "dagster/asset_partition_range_start"
    assert di.ASSET_PARTITION_RANGE_END_TAG == "dagster/asset_partition_range_end"
    parts = dg.StaticPartitionsDefinition(["a", "b", "c", "d"])
    seen = []

    @dg.asset(partitions_def=parts)
    def ranged(context) -> None:  # (annotations are strings here, which Dagster does not read)
        seen.extend(context.partition_keys)

    tags = {di.ASSET_PARTITION_RANGE_START_TAG: "b", di.ASSET_PARTITION_RANGE_END_TAG: "c"}
    assert dg.materialize([ranged], tags=tags).success
    assert seen == ["b", "c"]


def test_a_backfill_of_chosen_partitions_is_built_as_planning_builds_it():
    parts = dg.StaticPartitionsDefinition(["a", "b", "c"])

    @dg.asset(partitions_def=parts)
    def chosen() -> None: ...

    graph = dg.Definitions(assets=[chosen]).resolve_asset_graph()
    subset = di.AssetGraphSubset.from_asset_partition_set(
        {di.AssetKeyPartitionKey(chosen.key, p) for p in ("a", "c")}, graph
    )
    assert set(subset.iterate_asset_partitions()) == {di.AssetKeyPartitionKey(chosen.key, p) for p in ("a", "c")}
    with dg.instance_for_test() as instance:
        backfill = di.PartitionBackfill.from_asset_graph_subset(
            backfill_id=di.make_new_backfill_id(),
            backfill_timestamp=0.0,
            tags={"seedance/provider": "novita"},
            dynamic_partitions_store=instance,
            asset_graph_subset=subset,
            title="t",
            description="d",
            run_config=None,
        )
        instance.add_backfill(backfill)
        assert instance.get_backfill(backfill.backfill_id).tags == {"seedance/provider": "novita"}


def test_the_sqlite_event_log_still_has_what_our_pooled_subclass_overrides():
    # event_logs/sqlite.py replaces _connect and keeps engines per shard; it relies on these.
    cls = di.SqliteEventLogStorage
    for name in ("_connect", "_initdb", "path_for_shard", "conn_string_for_shard", "wipe", "dispose", "has_table"):
        assert callable(getattr(cls, name, None)), name
    assert list(inspect.signature(cls.__init__).parameters)[:3] == ["self", "base_dir", "inst_data"]
    assert isinstance(di.SQLITE_BUSY_TIMEOUT_SECONDS, int | float) and di.SQLITE_BUSY_TIMEOUT_SECONDS > 0


def test_a_planned_check_is_still_stored_by_the_method_our_event_logs_replace():
    # event_logs/checks.py PlannedRowPerPartition replaces how the SQL event logs write a planned check's rows.
    from dagster._core.storage.event_log.sql_event_log import SqlEventLogStorage

    method = SqlEventLogStorage._store_asset_check_evaluation_planned
    assert list(inspect.signature(method).parameters) == ["self", "event", "event_id"]
    assert "self._store_asset_check_evaluation_planned(" in inspect.getsource(
        SqlEventLogStorage.store_asset_check_event
    )
    assert callable(SqlEventLogStorage._event_insert_timestamp)
    from dagster._core.definitions.asset_checks.asset_check_evaluation import AssetCheckEvaluationPlanned

    planned = AssetCheckEvaluationPlanned(asset_key=dg.AssetKey("a"), check_name="c", partitions_subset=None)
    subset = dg.StaticPartitionsDefinition(["x"]).subset_with_partition_keys(["x"])
    copied = di.replace_record(planned, partitions_subset=subset)  # the copy keeps the other fields
    assert (copied.asset_key, copied.check_name, copied.partitions_subset) == (dg.AssetKey("a"), "c", subset)


def test_a_reported_materialization_is_the_event_dagster_builds_for_a_runless_one(tmp_path):
    # lineage/reported.py builds the event report_runless_asset_event builds, to store many at once.
    from seedance_pipeline.lineage.reported import _entry

    mat = dg.AssetMaterialization(asset_key="a", partition="p", metadata={"n": 1}, tags={di.DATA_VERSION_TAG: "v"})
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        instance.report_runless_asset_event(mat)
        theirs = instance.get_latest_materialization_event(dg.AssetKey("a"))
    ours = _entry(mat)
    assert theirs is not None and theirs.dagster_event is not None and ours.dagster_event is not None
    assert (ours.run_id, ours.job_name, ours.level, ours.step_key, ours.user_message) == (
        theirs.run_id,
        theirs.job_name,
        theirs.level,
        theirs.step_key,
        theirs.user_message,
    )
    assert ours.dagster_event._replace(pid=None) == theirs.dagster_event._replace(pid=None)
