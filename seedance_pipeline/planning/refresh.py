"""What changed in storage since Dagster last looked: shared by the storage sensor and ``run``.

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
from seedance_pipeline.lineage.partitions import IMAGES, PROMPTS
from seedance_pipeline.storage.resource import Rejected, SeedanceStorage, StoredFile


@dataclass
class RefreshPlan:
    images: list[str]  # every image key, in partition order once the new ones are added
    prompts: list[str]
    new_images: list[str] = field(default_factory=list)
    new_prompts: list[str] = field(default_factory=list)
    changed_images: dict[str, str] = field(default_factory=dict)  # key -> stamp (new ones included)
    changed_prompts: dict[str, str] = field(default_factory=dict)
    rejected: list[Rejected] = field(default_factory=list)

    def digest(self, what: dict[str, str]) -> str:
        return hashlib.sha256(repr(sorted(what.items())).encode()).hexdigest()[:16]


def plan_refresh(instance: dg.DagsterInstance, storage: SeedanceStorage) -> RefreshPlan:
    images, rejected_images = storage.scan_images()
    prompt_files, rejected_prompts = storage.scan_prompts()
    known_images = list(instance.get_dynamic_partitions(IMAGES))
    known_prompts = list(instance.get_dynamic_partitions(PROMPTS))
    known_i, known_p = set(known_images), set(known_prompts)
    plan = RefreshPlan(
        images=known_images + [f.key for f in images if f.key not in known_i],
        prompts=known_prompts + [f.key for f in prompt_files if f.key not in known_p],
        new_images=[f.key for f in images if f.key not in known_i],
        new_prompts=[f.key for f in prompt_files if f.key not in known_p],
        rejected=rejected_images + rejected_prompts,
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


def add_requests(plan: RefreshPlan) -> list[dg.AddDynamicPartitionsRequest]:
    from seedance_pipeline.lineage.partitions import image_partitions, prompt_partitions

    requests = []
    if plan.new_images:
        requests.append(image_partitions.build_add_request(plan.new_images))
    if plan.new_prompts:
        requests.append(prompt_partitions.build_add_request(plan.new_prompts))
    return requests
