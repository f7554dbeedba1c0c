"""Registering images: each file read, inspected and previewed, and recorded as the materialization of its
``source_images`` partition (data version = sha256 of the bytes), with its facts and stamp for the plans.

One recipe for both ways an image is registered: the ``source_images`` asset yields these materializations in a
run (the storage sensor's runs, the UI's Materialize), and ``seedance-pipeline run`` reports them without a run,
in batches (``lineage/reported.py``), because at catalog scale a run's two events an image are most of the cost.
"""

from __future__ import annotations

import base64
import io
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

import dagster as dg
from PIL import Image

from seedance_pipeline.core.errors import InvalidRequest
from seedance_pipeline.core.images import ImageData, inspect_image
from seedance_pipeline.lineage import versions
from seedance_pipeline.lineage.names import IMAGES_KEY, IMAGES_STAMPS, SOURCES_CODE_VERSION
from seedance_pipeline.planning.images import ImageFacts, record_facts
from seedance_pipeline.storage.resource import SeedanceStorage, StoredFile

T = TypeVar("T")
R = TypeVar("R")
# Images read, inspected and previewed ahead of the event log, in threads: on S3 the reads overlap (1,000 images at
# 30 ms per request: 90.1 s one after another, 15.1 s eight ahead; benchmarks/README.md M11), and PIL's decode and
# resize and hashlib release the GIL. At most this many images are held in memory at once (each < 30 MB).
READ_AHEAD = 8


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


@dataclass
class ImageRegistration:
    """Materializations of the given files, then ``record()``: the stamps and facts of those that were read.
    A file that is not a usable image is left out and named in ``failures`` (key: reason)."""

    storage: SeedanceStorage
    failures: list[str] = field(default_factory=list)
    stamps: dict[str, str] = field(default_factory=dict)
    facts: dict[str, ImageFacts] = field(default_factory=dict)

    def materializations(self, files: list[StoredFile]) -> Iterator[dg.AssetMaterialization]:
        read = _ahead(lambda stored: _read_image(self.storage, stored), files, READ_AHEAD)
        for stored, outcome in zip(files, read, strict=True):
            if isinstance(outcome, InvalidRequest):
                self.failures.append(f"{stored.key}: {outcome}")
                continue
            img, preview = outcome
            self.stamps[stored.key] = stored.stamp
            self.facts[stored.key] = ImageFacts.of(img, stored.stamp)
            yield versions.materialization(
                IMAGES_KEY,
                stored.key,
                data_version=img.sha256,
                code_version=SOURCES_CODE_VERSION,
                metadata={
                    "path": dg.MetadataValue.path(self.storage.ref(stored.path)),
                    "stamp": stored.stamp,
                    "format": img.format,
                    "width": img.width,
                    "height": img.height,
                    "size_bytes": img.size,
                    "sha256": img.sha256,
                    "preview": dg.MetadataValue.md(preview),
                },
            )

    def record(self) -> None:
        """After the materializations are stored: an image whose stamp is recorded is not read again."""
        self.storage.update_stamps(IMAGES_STAMPS, self.stamps)
        record_facts(self.storage, self.facts)
