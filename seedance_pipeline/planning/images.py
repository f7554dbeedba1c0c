"""The images a plan needs, from storage by key: each read once, and all of a run's in one batched call."""

from __future__ import annotations

import contextlib

from seedance_pipeline.core.errors import InvalidRequest
from seedance_pipeline.core.images import ImageData, inspect_image
from seedance_pipeline.storage.resource import SeedanceStorage


class ImageLoader:
    """Images from storage by key, each read and inspected once."""

    def __init__(self, storage: SeedanceStorage):
        self.storage = storage
        self._stored = {f.key: f for f in storage.scan_images()[0]}
        self._loaded: dict[str, ImageData] = {}

    def preload(self, keys: set[str]) -> None:
        """Read these images in one batched call (concurrent on object stores: one round trip's wait instead
        of one per image). An image that fails to read is left to ``__call__``, which raises its error."""
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
            self._loaded[key] = inspect_image(stored.path, self.storage.read_bytes(stored.path))
        return self._loaded[key]
