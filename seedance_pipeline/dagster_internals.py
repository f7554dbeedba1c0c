"""Every private Dagster name the package uses, imported here and nowhere else.

Each has no public equivalent in dagster 1.13 (the README's "Dagster features we rely on" says why each is
needed and which upstream change would remove it). ``seedance_pipeline_tests/test_dagster_internals.py``
checks that each still exists and still means what the code assumes, so an upgrade that moves or changes one
fails there, loudly, instead of somewhere in a run.
"""

from dagster._core.definitions.assets.graph.asset_graph_subset import AssetGraphSubset
from dagster._core.definitions.data_version import (
    CODE_VERSION_TAG,
    DATA_VERSION_IS_USER_PROVIDED_TAG,
    DATA_VERSION_TAG,
    compute_logical_data_version,
    get_input_data_version_tag,
    get_input_event_pointer_tag,
)
from dagster._core.definitions.events import AssetKeyPartitionKey
from dagster._core.definitions.partitions.utils import get_tags_from_multi_partition_key
from dagster._core.events import DagsterEvent, StepMaterializationData
from dagster._core.events.log import EventLogEntry
from dagster._core.execution.backfill import PartitionBackfill
from dagster._core.instance.utils import RUNLESS_JOB_NAME, RUNLESS_RUN_ID
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus
from dagster._core.storage.event_log import SqliteEventLogStorage
from dagster._core.storage.event_log.schema import (
    AssetCheckExecutionsTable,
    AssetKeyTable,
    SqlEventLogStorageTable,
)
from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG
from dagster._core.utils import make_new_backfill_id
from dagster_shared.record import replace as replace_record

__all__ = [
    # Per-partition provenance (lineage/versions.py): the tags Dagster's stale-status resolver reads.
    "CODE_VERSION_TAG",
    "DATA_VERSION_IS_USER_PROVIDED_TAG",
    "DATA_VERSION_TAG",
    "compute_logical_data_version",
    "get_input_data_version_tag",
    "get_input_event_pointer_tag",
    "get_tags_from_multi_partition_key",
    # A run over a range of partitions (lineage/partitions.py).
    "ASSET_PARTITION_RANGE_END_TAG",
    "ASSET_PARTITION_RANGE_START_TAG",
    # Launching an asset backfill of exactly the planned partitions (planning/backfill.py).
    "AssetGraphSubset",
    "AssetKeyPartitionKey",
    "PartitionBackfill",
    "make_new_backfill_id",
    # The embedded default's event log (event_logs/sqlite.py), and its batched write.
    "SQLITE_BUSY_TIMEOUT_SECONDS",
    "EventLogEntry",
    "SqlEventLogStorageTable",
    "SqliteEventLogStorage",
    # An asset's row updated before it is inserted (event_logs/sqlite.py), and a check evaluation's execution row
    # written in the transaction of its event (event_logs/checks.py).
    "AssetKeyTable",
    "AssetCheckExecutionRecordStatus",
    "AssetCheckExecutionsTable",
    # A planned check's execution row carrying its own partition's planned event (event_logs/checks.py): a copy of
    # Dagster's AssetCheckEvaluationPlanned record with another partition subset.
    "replace_record",
    # Source images recorded in batches, without a run (lineage/reported.py): the event Dagster's
    # report_runless_asset_event builds, stored with the event log's store_event_batch.
    "DagsterEvent",
    "RUNLESS_JOB_NAME",
    "RUNLESS_RUN_ID",
    "StepMaterializationData",
]
