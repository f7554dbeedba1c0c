"""What changed in storage since Dagster last looked: shared by the storage sensor and ``run``.

A file that is gone retires its partition: the key is removed from Dagster's dynamic partitions, so no run
covers it and the UI no longer lists it. Removal, not a mark: Dagster keeps the partition's materializations
in the event log, and the ledger and the clips in storage are untouched, so a file that comes back (or a
renamed copy, by fingerprint) gets its clips back without a request, with its history.

Each source materialization records the file's stamp (size + mtime/ETag) in a small index in storage,
so a listing plus one read per asset tells what is new or changed, whatever the number of files. The
index is only an optimisation: a lost stamp means the file is read and hashed again, and an unchanged
file hashes to the same data version, which marks nothing outdated.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import dagster as dg

from seedance_pipeline.lineage import versions
from seedance_pipeline.lineage.names import IMAGES_KEY, IMAGES_STAMPS, PROMPTS_KEY, PROMPTS_STAMPS
from seedance_pipeline.lineage.partitions import IMAGES, PROMPTS, image_partitions, prompt_partitions
from seedance_pipeline.storage.resource import Rejected, SeedanceStorage, StoredFile


@dataclass
class RefreshPlan:
    images: list[str]  # every image key with a file, in partition order once the new ones are added
    prompts: list[str]
    gone_images: list[str] = field(default_factory=list)  # partitions whose file is gone: to retire
    gone_prompts: list[str] = field(default_factory=list)
    new_images: list[str] = field(default_factory=list)
    new_prompts: list[str] = field(default_factory=list)
    changed_images: dict[str, str] = field(default_factory=dict)  # key -> stamp (new ones included)
    changed_prompts: dict[str, str] = field(default_factory=dict)
    rejected: list[Rejected] = field(default_factory=list)
    image_files: dict[str, StoredFile] = field(default_factory=dict)  # the listing of images/ it was planned from

    def digest(self, what: dict[str, str]) -> str:
        return hashlib.sha256(repr(sorted(what.items())).encode()).hexdigest()[:16]


def plan_refresh(instance: dg.DagsterInstance, storage: SeedanceStorage) -> RefreshPlan:
    images, rejected_images = storage.scan_images()
    prompt_files, rejected_prompts = storage.scan_prompts()
    known_images = list(instance.get_dynamic_partitions(IMAGES))
    known_prompts = list(instance.get_dynamic_partitions(PROMPTS))
    known_i, known_p = set(known_images), set(known_prompts)
    present_i, present_p = {f.key for f in images}, {f.key for f in prompt_files}
    plan = RefreshPlan(
        images=[k for k in known_images if k in present_i] + [f.key for f in images if f.key not in known_i],
        prompts=[k for k in known_prompts if k in present_p] + [f.key for f in prompt_files if f.key not in known_p],
        gone_images=[k for k in known_images if k not in present_i],
        gone_prompts=[k for k in known_prompts if k not in present_p],
        new_images=[f.key for f in images if f.key not in known_i],
        new_prompts=[f.key for f in prompt_files if f.key not in known_p],
        rejected=rejected_images + rejected_prompts,
        image_files={f.key: f for f in images},
    )
    plan.changed_images = _changed(instance, storage, IMAGES_KEY, IMAGES_STAMPS, images)
    plan.changed_prompts = _changed(instance, storage, PROMPTS_KEY, PROMPTS_STAMPS, prompt_files)
    return plan


def _changed(
    instance: dg.DagsterInstance, storage: SeedanceStorage, asset_key: dg.AssetKey, index: str, files: list[StoredFile]
) -> dict[str, str]:
    """Files that are new, changed since materialized, or not materialized in this instance."""
    recorded = storage.read_stamps(index)
    materialized = versions.latest_versions(instance, asset_key)
    return {f.key: f.stamp for f in files if recorded.get(f.key) != f.stamp or f.key not in materialized}


def partition_requests(
    plan: RefreshPlan,
) -> list[dg.AddDynamicPartitionsRequest | dg.DeleteDynamicPartitionsRequest]:
    """The sensor's changes to the partition sets: retire the keys whose file is gone, add the new ones."""
    requests: list[dg.AddDynamicPartitionsRequest | dg.DeleteDynamicPartitionsRequest] = []
    for partitions, gone, new in (
        (image_partitions, plan.gone_images, plan.new_images),
        (prompt_partitions, plan.gone_prompts, plan.new_prompts),
    ):
        if gone:
            requests.append(partitions.build_delete_request(gone))
        if new:
            requests.append(partitions.build_add_request(new))
    return requests


def apply(instance: dg.DagsterInstance, plan: RefreshPlan) -> None:
    """The same changes, made directly (``seedance-pipeline run``, which runs without the daemon)."""
    for name, gone, new in (
        (IMAGES, plan.gone_images, plan.new_images),
        (PROMPTS, plan.gone_prompts, plan.new_prompts),
    ):
        for key in gone:
            instance.delete_dynamic_partition(name, key)
        if new:
            instance.add_dynamic_partitions(name, new)


def retired_lines(plan: RefreshPlan) -> list[str]:
    """What a run says about the partitions it retired."""
    return [
        f"{what} {key} ({folder}/{key}.* is gone): its clips stay in storage and in the reports, and come back "
        "without a request if the file returns"
        for what, folder, keys in (("image", "images", plan.gone_images), ("prompt", "prompts", plan.gone_prompts))
        for key in keys
    ]
