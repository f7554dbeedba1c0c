"""Per-partition materializations with exact provenance, for runs that cover many partitions.

Dagster gives every partition of a ranged run one shared set of provenance tags, and records nothing
if the step fails. Our assets instead yield one ``AssetMaterialization`` per partition as soon as that
partition is done, tagged with the data versions of *its own* parent partitions. So a run that fails
half-way keeps every clip it paid for, and editing one prompt marks exactly that prompt's clips stale.

Only the data-version tag is indexed per partition, so "is this clip stale?" compares the clip's
recorded data version with the logical version of its current inputs (``logical_version``).

The tag names are Dagster's (``dagster_internals.py``); ``test_dagster_internals.py`` checks that
Dagster's stale-status resolver reads them as intended, so an upgrade that changes them fails loudly.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import dagster as dg

from seedance_pipeline import dagster_internals as di


@dataclass(frozen=True)
class Version:
    """The latest materialization of one partition: its data version and event storage id."""

    data_version: str
    storage_id: int


def latest_versions(
    instance: dg.DagsterInstance, asset_key: dg.AssetKey, partitions: Iterable[str] | None = None
) -> dict[str, Version]:
    """Latest data version per partition, in two queries whatever the number of partitions."""
    wanted = sorted(set(partitions)) if partitions is not None else None
    store = instance.event_log_storage
    tags = store.get_latest_tags_by_partition(
        asset_key, dg.DagsterEventType.ASSET_MATERIALIZATION, [di.DATA_VERSION_TAG], asset_partitions=wanted
    )
    ids = store.get_latest_storage_id_by_partition(
        asset_key, dg.DagsterEventType.ASSET_MATERIALIZATION, set(wanted) if wanted is not None else None
    )
    return {
        p: Version(t[di.DATA_VERSION_TAG], ids[p]) for p, t in tags.items() if di.DATA_VERSION_TAG in t and p in ids
    }


def logical_version(code_version: str, inputs: Mapping[dg.AssetKey, Version]) -> str:
    """Dagster's own data version for "made by this code from these inputs" (what it computes itself)."""
    return di.compute_logical_data_version(
        code_version, {k: dg.DataVersion(v.data_version) for k, v in inputs.items()}
    ).value


def materialization(
    asset_key: dg.AssetKey,
    partition: str | dg.MultiPartitionKey,
    *,
    data_version: str | None,
    code_version: str,
    inputs: Mapping[dg.AssetKey, Version] | None = None,
    metadata: Mapping[str, Any] | None = None,
    tags: Mapping[str, str] | None = None,
) -> dg.AssetMaterialization:
    """``data_version`` None: the logical version of ``inputs`` (as Dagster would compute it)."""
    all_tags = {di.CODE_VERSION_TAG: code_version}
    if data_version is None:
        all_tags[di.DATA_VERSION_TAG] = logical_version(code_version, inputs or {})
    else:
        all_tags.update({di.DATA_VERSION_TAG: data_version, di.DATA_VERSION_IS_USER_PROVIDED_TAG: "true"})
    for parent, version in (inputs or {}).items():
        all_tags[di.get_input_data_version_tag(parent)] = version.data_version
        all_tags[di.get_input_event_pointer_tag(parent)] = str(version.storage_id)
    if isinstance(partition, dg.MultiPartitionKey):
        all_tags.update(di.get_tags_from_multi_partition_key(partition))
    all_tags.update(tags or {})
    return dg.AssetMaterialization(
        asset_key=asset_key, partition=str(partition), metadata=dict(metadata or {}), tags=all_tags
    )


def is_stale(recorded: Version | None, inputs: Mapping[dg.AssetKey, Version], code_version: str) -> bool:
    """True when a partition's latest materialization was made from other inputs or other code."""
    return recorded is None or recorded.data_version != logical_version(code_version, inputs)
