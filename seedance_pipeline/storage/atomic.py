"""Writing to any fsspec filesystem so that a reader never sees half a file."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

import fsspec


def is_local(fs: fsspec.AbstractFileSystem) -> bool:
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    return protocol in ("file", "local")


@contextmanager
def atomic_writer(fs: fsspec.AbstractFileSystem, path: str) -> Iterator:
    """Yield a binary file handle; ``path`` appears complete on success and not at all on failure.

    Local folders: write ``<path>.part-<uuid>`` and rename (atomic on POSIX). Object stores: an object
    appears only when its upload completes, so we write in place and discard the upload on failure.
    """
    if is_local(fs):
        with _local_writer(path) as fh:
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


def _sync_folder(folder: str) -> None:
    """Make the folder's entries (a file renamed into it, a folder made in it) durable: an fsync of the folder."""
    fd = os.open(folder or ".", os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _make_folder(path: str) -> None:
    """Make ``path``'s folder and its missing ancestors, each new entry durable (its parent fsynced)."""
    folder, missing = os.path.dirname(path), []
    existing = folder
    while existing and not os.path.isdir(existing):
        missing.append(existing)
        existing = os.path.dirname(existing)
    os.makedirs(folder, exist_ok=True)
    for made_in in (existing, *reversed(missing[1:])):  # the folder itself is synced after the rename into it
        _sync_folder(made_in)


@contextmanager
def _local_writer(path: str) -> Iterator:
    """A local folder's atomic, durable write in the fewest system calls. The part file is fsynced before it
    replaces ``path`` (``os.replace``, one ``rename``; fsspec's ``mv`` is ``shutil.move``, a ``stat`` of the target
    first), and the folder after: when this returns, an OS crash or a power loss can no longer take the write
    back, as an S3 PUT that returned (docs/architecture.md, "Durability"; M29). The folder is made only when the
    part file cannot be created without it (asking first costs a ``mkdir`` and a ``stat`` a write; M26). A clip costs
    seven such writes. ``path`` is a local path, as every caller has it from ``fsspec.core.url_to_fs``
    (``SeedanceStorage.root``, ``generate``'s output), protocol stripped."""
    tmp = f"{path}.part-{uuid.uuid4().hex}"
    try:
        fh = open(tmp, "wb")  # noqa: SIM115 - closed below, on every path
    except FileNotFoundError:
        _make_folder(path)
        fh = open(tmp, "wb")  # noqa: SIM115
    try:
        yield fh
        fh.flush()
        os.fsync(fh.fileno())
        fh.close()
        os.replace(tmp, path)
    except BaseException:
        fh.close()
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise
    _sync_folder(os.path.dirname(path))


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
    """Copy ``src`` to ``dst`` so that ``dst`` appears complete or not at all (server-side on object stores), and
    durable (on a local folder, through ``_local_writer``)."""
    if not is_local(fs):
        fs.copy(src, dst)  # an object appears only once the (server-side) copy is complete
        return
    with open(src, "rb") as source, _local_writer(dst) as target:
        shutil.copyfileobj(source, target)
