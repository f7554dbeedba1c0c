"""The images a plan needs, from storage by key: each inspected once (those the facts registration recorded do
not describe, read in batches), their bytes read again only when a request that carries them is sent.

A plan need not read an image to validate and price its requests: registration (``source_images``) records each
image's facts in ``state/facts/source_images.json`` with the stamp (size + mtime/ETag) its file had. While the file
still has that stamp, the facts stand for the file and its bytes are read when something asks for them: never in a
plan that sends nothing (``forecast``, ``backfill --dry-run``), and in a run when a clip's request is sent (in its
provider slot, ``clip/generate.py``), checked against the recorded SHA-256 and kept only until the request has left
(``core.images.HeldBytes``). A run thus neither reads every image before its first submit nor keeps every image in
memory until it ends. A file with another stamp, or without facts, is read and inspected at once (in batches), then
treated alike: its bytes are read again when sent. The index is a cache: losing it costs reads.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
from collections.abc import Mapping

from pydantic import BaseModel, TypeAdapter, ValidationError

from seedance_pipeline.core.errors import InvalidRequest
from seedance_pipeline.core.images import HeldBytes, ImageData, inspect_image
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


# Images without facts read at once in one batched call: a batch is held in memory until it is inspected.
_BATCH = 64


class ImageLoader:
    """Images from storage by key, each inspected once, or taken from the recorded facts where the file is unchanged;
    their bytes read only when something asks for them, and refused if they are no longer what was inspected."""

    def __init__(self, storage: SeedanceStorage):
        self.storage = storage
        self._stored = {f.key: f for f in storage.scan_images()[0]}
        self._facts = read_facts(storage)
        self._loaded: dict[str, ImageData] = {}

    def preload(self, keys: set[str]) -> None:
        """The images without facts among these, read in batched calls (concurrent on object stores: one round
        trip's wait instead of one per image). An image that fails to read is left to ``__call__``, which raises
        its error."""
        for key in keys:
            stored, facts = self._stored.get(key), self._facts.get(key)
            if stored is not None and facts is not None and facts.stamp == stored.stamp:
                self._loaded[key] = self._known(stored, facts)
        unknown = sorted(k for k in keys if k in self._stored and k not in self._loaded)
        for start in range(0, len(unknown), _BATCH):
            paths = {self._stored[k].path: k for k in unknown[start : start + _BATCH]}
            blobs = self.storage.fs.cat(list(paths), on_error="omit")
            for path, key in paths.items():
                if path in blobs:
                    with contextlib.suppress(InvalidRequest):  # raised again, naming the field, when the item asks
                        self._loaded[key] = self._inspected(self._stored[key], blobs[path])

    def __call__(self, key: str, field_name: str = "image") -> ImageData:
        if key not in self._loaded:
            stored = self._stored.get(key)
            if stored is None:
                raise InvalidRequest(field_name, key, "no such image in storage")
            self._loaded[key] = self._inspected(stored, self.storage.read_bytes(stored.path), field_name)
        return self._loaded[key]

    def _inspected(self, stored: StoredFile, data: bytes, field_name: str = "image") -> ImageData:
        """An image read and inspected now, then taken as registration would have described it: its bytes are
        not kept."""
        return self._known(stored, ImageFacts.of(inspect_image(stored.path, data, field_name), stored.stamp))

    def _known(self, stored: StoredFile, facts: ImageFacts) -> ImageData:
        return ImageData(
            ref=stored.path,
            format=facts.format,
            width=facts.width,
            height=facts.height,
            size=facts.size,
            sha256=facts.sha256,
            read=HeldBytes(functools.partial(self._read_as_recorded, stored.path, facts.sha256)),
        )

    def _read_as_recorded(self, path: str, sha256: str) -> bytes:
        """The file's bytes, if they are still those the facts describe (their SHA-256: what was inspected)."""
        data = self.storage.read_bytes(path)
        if hashlib.sha256(data).hexdigest() != sha256:
            raise InvalidRequest("image", path, "the file changed while the plan was made; plan again")
        return data
