"""``source_images`` and ``prompts``: Dagster's record of what is in storage, one partition per file."""

import base64
import io
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

import dagster as dg
from PIL import Image

from seedance_pipeline.core.errors import InvalidRequest
from seedance_pipeline.core.images import ImageData, inspect_image
from seedance_pipeline.lineage import versions
from seedance_pipeline.lineage.names import (
    IMAGES_KEY,
    IMAGES_STAMPS,
    OWNERS,
    PROMPTS_KEY,
    PROMPTS_STAMPS,
    SOURCES_CODE_VERSION,
    SOURCES_GROUP,
)
from seedance_pipeline.lineage.partitions import image_partitions, prompt_partitions
from seedance_pipeline.planning.images import ImageFacts, record_facts
from seedance_pipeline.planning.prompt_spec import PromptError, parse_prompt
from seedance_pipeline.planning.specs import load_specs
from seedance_pipeline.storage.resource import SeedanceStorage, StoredFile

T = TypeVar("T")
R = TypeVar("R")
# Images read, inspected and previewed ahead of the event log, in threads: on S3 the reads overlap (1,000 images at
# 30 ms per request: 90.1 s one after another, 15.1 s eight ahead; benchmarks/README.md M11), and PIL's decode and
# resize and hashlib release the GIL. At most this many images are held in memory at once (each < 30 MB).
READ_AHEAD = 8


class RefreshConfig(dg.Config):
    only_changed: bool = False  # skip partitions whose file is unchanged since the last materialization


def thumbnail_markdown(data: bytes, max_side: int = 240) -> str:
    """A JPEG preview for the UI. A JPEG source is decoded at the smallest power-of-two scale that still
    covers ``max_side`` (``draft``), then reduced in integer steps before the final resample: a 1080p
    photo's preview in 26 ms instead of 44 (registration of a catalog is mostly this and the event log)."""
    with Image.open(io.BytesIO(data)) as opened:
        opened.draft("RGB", (max_side, max_side))
        img = opened.convert("RGB")
        img.thumbnail((max_side, max_side), reducing_gap=2.0)
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=80)
    return f"![thumbnail](data:image/jpeg;base64,{base64.b64encode(buf.getvalue()).decode()})"


def _ahead(fn: Callable[[T], R], items: Iterable[T], n: int) -> Iterator[R]:
    """``fn`` over ``items`` in order, at most ``n`` of them computed ahead of the consumer in worker threads."""
    with ThreadPoolExecutor(n, thread_name_prefix="seedance-sources") as pool:
        window: deque[Future[R]] = deque()
        for item in items:
            window.append(pool.submit(fn, item))
            if len(window) > n:
                yield window.popleft().result()
        while window:
            yield window.popleft().result()


def _read_image(storage: SeedanceStorage, stored: StoredFile) -> tuple[ImageData, str] | InvalidRequest:
    """The image inspected and its preview, or why it cannot be used."""
    data = storage.read_bytes(stored.path)
    try:
        return inspect_image(stored.path, data), thumbnail_markdown(data)
    except InvalidRequest as exc:
        return exc


def _unchanged(
    context, storage: SeedanceStorage, asset_key: dg.AssetKey, keys: list[str], stamps: dict[str, str], enabled: bool
) -> set[str]:
    """Keys whose file has the stamp it had when this instance last materialized it."""
    if not enabled:
        return set()
    recorded = storage.read_stamps(asset_key.path[-1])
    materialized = versions.latest_versions(context.instance, asset_key, keys)
    return {k for k in keys if k in stamps and recorded.get(k) == stamps[k] and k in materialized}


def _fail_if(failures: list[str], what: str) -> None:
    if failures:
        raise dg.Failure(
            description=f"{len(failures)} {what} could not be read; every other partition was recorded:\n"
            + "\n".join(f"- {f}" for f in failures),
            allow_retries=False,
        )


@dg.asset(
    partitions_def=image_partitions,
    output_required=False,
    group_name=SOURCES_GROUP,
    owners=OWNERS,
    kinds={"image"},
    code_version=SOURCES_CODE_VERSION,
    description="Source still images, one partition per file under images/ (key = file name stem). "
    "Data version = sha256 of the bytes, so a replaced image marks exactly its clips outdated.",
)
def source_images(context: dg.AssetExecutionContext, config: RefreshConfig, storage: SeedanceStorage):
    files = {f.key: f for f in storage.scan_images()[0]}
    keys = list(context.partition_keys)
    skip = _unchanged(context, storage, IMAGES_KEY, keys, {k: f.stamp for k, f in files.items()}, config.only_changed)
    failures, seen, facts = [], {}, {}
    todo = []
    for key in keys:
        stored = files.get(key)
        if stored is None:
            # Gone since the run was planned: the next refresh retires the partition (planning/refresh.py).
            context.log.warning(f"{key}: no file images/{key}.* in {storage.url} any more; left as it was")
        elif key not in skip:
            todo.append((key, stored))
    read = _ahead(lambda item: _read_image(storage, item[1]), todo, READ_AHEAD)
    for (key, stored), outcome in zip(todo, read, strict=True):
        if isinstance(outcome, InvalidRequest):
            failures.append(f"{key}: {outcome}")
            continue
        img, preview = outcome
        seen[key] = stored.stamp
        facts[key] = ImageFacts.of(img, stored.stamp)
        yield versions.materialization(
            IMAGES_KEY,
            key,
            data_version=img.sha256,
            code_version=SOURCES_CODE_VERSION,
            metadata={
                "path": dg.MetadataValue.path(storage.ref(stored.path)),
                "stamp": stored.stamp,
                "format": img.format,
                "width": img.width,
                "height": img.height,
                "size_bytes": img.size,
                "sha256": img.sha256,
                "preview": dg.MetadataValue.md(preview),
            },
        )
    storage.update_stamps(IMAGES_STAMPS, seen)
    record_facts(storage, facts)
    _fail_if(failures, "images")


@dg.asset(
    partitions_def=prompt_partitions,
    output_required=False,
    group_name=SOURCES_GROUP,
    owners=OWNERS,
    kinds={"yaml"},
    code_version=SOURCES_CODE_VERSION,
    description="Prompt specs, one partition per prompts/<key>.yaml, validated on load (unknown keys are "
    "errors). Data version = hash of the normalised request fields: editing the text or a "
    "generation parameter marks exactly this prompt's clips outdated; comments change nothing, and "
    "a change of image globs is recorded (new targets) without outdating any clip.",
)
def prompts(context: dg.AssetExecutionContext, config: RefreshConfig, storage: SeedanceStorage):
    files = {f.key: f for f in storage.scan_prompts()[0]}
    keys = list(context.partition_keys)
    recorded = load_specs(context.instance, set(keys)) if config.only_changed else {}
    failures, seen = [], {}
    for key in keys:
        stored = files.get(key)
        if stored is None:
            context.log.warning(f"{key}: no file prompts/{key}.yaml in {storage.url} any more; left as it was")
            continue
        name = stored.path.rsplit("/", 1)[-1]
        try:
            spec = parse_prompt(f"prompts/{name}", storage.read_bytes(stored.path))
        except PromptError as exc:
            context.log.error(str(exc))
            failures.append(str(exc))
            continue
        seen[key] = stored.stamp
        if recorded.get(key) == spec:
            continue  # same spec as recorded (e.g. only a comment changed): nothing to record
        yield versions.materialization(
            PROMPTS_KEY,
            key,
            data_version=spec.data_version,
            code_version=SOURCES_CODE_VERSION,
            metadata={
                "path": dg.MetadataValue.path(storage.ref(stored.path)),
                "stamp": stored.stamp,
                "text": spec.text,
                "provider": spec.provider,
                "images": ", ".join(spec.images),
                "duration_s": spec.duration,
                "resolution": spec.resolution,
                "aspect_ratio": spec.aspect_ratio,
                "generate_audio": spec.generate_audio,
                "seed": spec.seed,
                "spec": dg.MetadataValue.json(spec.model_dump(mode="json")),
            },
        )
    storage.update_stamps(PROMPTS_STAMPS, seen)
    _fail_if(failures, "prompt files")
