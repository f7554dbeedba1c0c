"""Writing to any fsspec filesystem so that a reader never sees half a file."""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

import fsspec


def is_local(fs: fsspec.AbstractFileSystem) -> bool:
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    return protocol in ("file", "local")


def _parent_folder(fs: fsspec.AbstractFileSystem, path: str) -> None:
    """A local folder needs its parent folder. Object stores have none: there s3fs's ``makedirs`` asks whether
    the bucket exists (a HEAD, 8 of a clip's 24 S3 requests, benchmark 1)."""
    parent = path.rsplit("/", 1)[0] if "/" in path else ""
    if parent:
        fs.makedirs(parent, exist_ok=True)


@contextmanager
def atomic_writer(fs: fsspec.AbstractFileSystem, path: str) -> Iterator:
    """Yield a binary file handle; ``path`` appears complete on success and not at all on failure.

    Local folders: write ``<path>.part-<uuid>`` and rename (atomic on POSIX). Object stores: an object
    appears only when its upload completes, so we write in place and discard the upload on failure.
    """
    if is_local(fs):
        with _local_writer(fs, path) as fh:
            yield fh
        return
    fh = fs.open(path, "wb")
    try:
        yield fh
    except BaseException:
        discard = getattr(fh, "discard", None)
        if discard is not None:
            discard()
            # Left open, the handle would be closed (and so uploaded) when garbage-collected.
            fh.closed = True
        raise
    fh.close()


@contextmanager
def _local_writer(fs: fsspec.AbstractFileSystem, path: str) -> Iterator:
    """A local folder's atomic write in the fewest system calls. The folder is made only when the part file cannot
    be created without it (asking first costs a ``mkdir`` and a ``stat`` a write), and the part file replaces
    ``path`` by ``os.replace``, one ``rename`` (fsspec's ``mv`` is ``shutil.move``: a ``stat`` of the target first).
    A clip costs seven such writes (benchmarks/README.md, M26). ``path`` is a local path, as every caller has it
    from ``fsspec.core.url_to_fs`` (``SeedanceStorage.root``, ``generate``'s output), protocol stripped."""
    tmp = f"{path}.part-{uuid.uuid4().hex}"
    try:
        fh = open(tmp, "wb")  # noqa: SIM115 - closed below, on every path
    except FileNotFoundError:
        _parent_folder(fs, path)
        fh = open(tmp, "wb")  # noqa: SIM115
    try:
        yield fh
        fh.close()
        os.replace(tmp, path)
    except BaseException:
        fh.close()
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


@asynccontextmanager
async def atomic_writer_async(fs: fsspec.AbstractFileSystem, path: str) -> AsyncIterator:
    """``atomic_writer`` for a coroutine: opening and finishing (the upload on an object store, the close
    and rename on a local folder) run on a worker thread, so the event loop's other I/O goes on meanwhile.
    Writes to the handle stay on the caller's thread: they only fill the handle's buffer."""
    writer = atomic_writer(fs, path)
    fh = await asyncio.to_thread(writer.__enter__)
    try:
        yield fh
    except BaseException as exc:
        if not await asyncio.to_thread(writer.__exit__, type(exc), exc, exc.__traceback__):
            raise
    else:
        await asyncio.to_thread(writer.__exit__, None, None, None)


def atomic_copy(fs: fsspec.AbstractFileSystem, src: str, dst: str) -> None:
    """Copy ``src`` to ``dst`` so that ``dst`` appears complete or not at all (server-side on object stores)."""
    if not is_local(fs):
        fs.copy(src, dst)  # an object appears only once the (server-side) copy is complete
        return
    _parent_folder(fs, dst)
    tmp = f"{dst}.part-{uuid.uuid4().hex}"
    try:
        fs.copy(src, tmp)
        fs.mv(tmp, dst)
    except BaseException:
        if fs.exists(tmp):
            fs.rm(tmp)
        raise
