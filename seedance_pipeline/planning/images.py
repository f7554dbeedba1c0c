"""The images a plan needs, from storage by key: each read once, and all of a run's in one batched call.

A plan that sends nothing (``forecast``, ``backfill --dry-run``) need not read an image at all: registration
(``source_images``) records each image's facts in ``state/facts/source_images.json`` with the stamp (size +
mtime/ETag) its file had. While the file still has that stamp, the facts stand for the file; a file with
another stamp, or without facts, is read and inspected as in a run. The index is a cache: losing it costs reads.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Mapping

from pydantic import BaseModel, TypeAdapter, ValidationError

from seedance_pipeline.core.errors import InvalidRequest
from seedance_pipeline.core.images import ImageData, inspect_image
from seedance_pipeline.storage import layout
from seedance_pipeline.storage.resource import SeedanceStorage, StoredFile


class ImageFacts(BaseModel, frozen=True):
    """What registration learned of one image file, and the stamp the file had then."""

    stamp: str
    sha256: str
    format: str
    width: int
    height: int
    size: int

    @classmethod
    def of(cls, img: ImageData, stamp: str) -> ImageFacts:
        return cls(stamp=stamp, sha256=img.sha256, format=img.format, width=img.width, height=img.height, size=img.size)


_FACTS = TypeAdapter(dict[str, ImageFacts])


def record_facts(storage: SeedanceStorage, facts: Mapping[str, ImageFacts]) -> None:
    storage.update_index(layout.image_facts(), {k: f.model_dump() for k, f in facts.items()})


def read_facts(storage: SeedanceStorage) -> dict[str, ImageFacts]:
    try:
        return _FACTS.validate_python(storage.read_index(layout.image_facts()))
    except ValidationError:
        return {}  # a cache written by another version, or edited by hand: the files are read instead


class ImageLoader:
    """Images from storage by key, each read and inspected once; with ``facts``, taken from the recorded facts
    where the file is unchanged (its bytes are then read only if something asks for them)."""

    def __init__(self, storage: SeedanceStorage, *, facts: bool = False):
        self.storage = storage
        self._stored = {f.key: f for f in storage.scan_images()[0]}
        self._facts = read_facts(storage) if facts else {}
        self._loaded: dict[str, ImageData] = {}

    def preload(self, keys: set[str]) -> None:
        """Read these images in one batched call (concurrent on object stores: one round trip's wait instead
        of one per image). An image that fails to read is left to ``__call__``, which raises its error."""
        for key in keys:
            stored, facts = self._stored.get(key), self._facts.get(key)
            if stored is not None and facts is not None and facts.stamp == stored.stamp:
                self._loaded[key] = self._known(stored, facts)
        paths = {self._stored[k].path: k for k in keys if k in self._stored and k not in self._loaded}
        if not paths:
            return
        blobs = self.storage.fs.cat(list(paths), on_error="omit")
        for path, key in paths.items():
            if path in blobs:
                with contextlib.suppress(InvalidRequest):  # raised again, naming the field, when the item asks
                    self._loaded[key] = inspect_image(path, blobs[path])

    def __call__(self, key: str, field_name: str = "image") -> ImageData:
        if key not in self._loaded:
            stored = self._stored.get(key)
            if stored is None:
                raise InvalidRequest(field_name, key, "no such image in storage")
            self._loaded[key] = inspect_image(stored.path, self.storage.read_bytes(stored.path), field_name)
        return self._loaded[key]

    def _known(self, stored: StoredFile, facts: ImageFacts) -> ImageData:
        return ImageData(
            ref=stored.path,
            format=facts.format,
            width=facts.width,
            height=facts.height,
            size=facts.size,
            sha256=facts.sha256,
            read=functools.cache(functools.partial(self._read_as_recorded, stored.path, facts.sha256)),
        )

    def _read_as_recorded(self, path: str, sha256: str) -> bytes:
        img = inspect_image(path, self.storage.read_bytes(path))
        if img.sha256 != sha256:
            raise InvalidRequest("image", path, "the file changed while the plan was made; plan again")
        return img.data
