"""``storage``: the Dagster resource over any fsspec filesystem: a local folder by default, ``s3://bucket/prefix``
through s3fs in production. Paths come from ``layout.py``; writes are atomic (``atomic.py``).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import dagster as dg
import fsspec
from pydantic import PrivateAttr

from seedance_pipeline.core import settings
from seedance_pipeline.core.keys import key_problem
from seedance_pipeline.storage import layout
from seedance_pipeline.storage.atomic import atomic_copy, atomic_writer, is_local


def default_storage_url() -> str:
    return settings.STORAGE_URL.read() or str(Path.cwd() / ".seedance" / "storage")


@dataclass(frozen=True)
class StoredFile:
    key: str
    path: str  # full path within the filesystem
    size: int
    stamp: str  # changes whenever the content may have changed (size + mtime or ETag)


@dataclass(frozen=True)
class Rejected:
    name: str
    reason: str


def file_stamp(info: dict) -> str:
    """Changes whenever a file's content may have changed: size + mtime or ETag."""
    marker = (
        info.get("ETag") or info.get("etag") or info.get("mtime") or info.get("LastModified") or info.get("created")
    )
    return f"{info.get('size')}:{marker}"


def _local_info(path: str) -> dict[str, Any]:
    """What ``file_stamp`` reads of fsspec's ``info`` of a local file, from one ``os.stat``."""
    st = os.stat(path)
    return {"size": st.st_size, "mtime": st.st_mtime}


class SeedanceStorage(dg.ConfigurableResource):
    """Where images, prompts, clips, reports and task records live (any fsspec URL)."""

    url: str
    endpoint_url: str | None = None  # S3-compatible stores (MinIO, moto, SeaweedFS, R2, ...)
    presign_expiry_s: int = settings.DEFAULT_PRESIGN_EXPIRY_S

    _fs: fsspec.AbstractFileSystem | None = PrivateAttr(default=None)

    @classmethod
    def from_env(cls, url: str | None = None) -> SeedanceStorage:
        """From the environment (``core/settings.py``); ``url`` replaces ``SEEDANCE_STORAGE_URL`` when given."""
        return cls(
            url=url or default_storage_url(),
            endpoint_url=settings.S3_ENDPOINT_URL.read(),
            presign_expiry_s=settings.PRESIGN_EXPIRY_S.read() or settings.DEFAULT_PRESIGN_EXPIRY_S,
        )

    @property
    def fs(self) -> fsspec.AbstractFileSystem:
        if self._fs is None:
            options: dict[str, Any] = {}
            if self.url.startswith("s3://"):
                # s3fs instances (and their listing caches) are shared process-wide: a cached listing
                # hides files other writers add or change, so scans and exists() always ask S3.
                options["use_listings_cache"] = False
                # botocore presigns SigV2 in us-east-1, which R2 and newer AWS regions refuse.
                options["config_kwargs"] = {"signature_version": "s3v4"}
                # Every read is one GET: above 1, s3fs asks each object's size first (a HEAD per read) to
                # fetch big objects in parallel parts. Ours are small (records, sidecars, images < 30 MB,
                # clips); reads of many objects still go concurrently (``cat`` of a list).
                options["max_concurrency"] = 1
                if self.endpoint_url:
                    options["client_kwargs"] = {"endpoint_url": self.endpoint_url}
            self._fs, _ = fsspec.core.url_to_fs(self.url, **options)
        return self._fs

    @cached_property
    def root(self) -> str:
        _, root = fsspec.core.url_to_fs(self.url)
        return root.rstrip("/")

    @property
    def is_local(self) -> bool:
        return is_local(self.fs)

    def path(self, *parts: str) -> str:
        """The full path of a ``layout`` path (or of parts joined with ``/``) under the root."""
        return "/".join([self.root, *parts])

    def ref(self, full_path: str) -> str:
        """A reference any fsspec caller can open: the local path, or ``s3://bucket/key``."""
        if self.is_local:
            return full_path
        protocol = self.fs.protocol if isinstance(self.fs.protocol, str) else self.fs.protocol[0]
        return f"{protocol}://{full_path}"

    # -- listings --------------------------------------------------------------------------------

    def _scan(self, folder: str, extensions: tuple[str, ...]) -> tuple[list[StoredFile], list[Rejected]]:
        base = self.path(folder)
        try:
            listing = self.fs.find(base, detail=True, maxdepth=1)
        except FileNotFoundError:
            return [], []
        files: dict[str, StoredFile] = {}
        rejected: list[Rejected] = []
        for full, info in sorted(listing.items()):
            if info.get("type") == "directory":
                continue
            name = full.rsplit("/", 1)[-1]
            stem, dot, ext = name.rpartition(".")
            if not dot or f".{ext.lower()}" not in extensions:
                if ".part-" not in name:
                    rejected.append(Rejected(name, f"not one of {', '.join(extensions)}"))
                continue
            problem = key_problem(stem)
            if problem:
                rejected.append(Rejected(name, f"file name {stem!r} cannot be a partition key: {problem}"))
            elif stem in files:
                rejected.append(
                    Rejected(name, f"key {stem!r} is already taken by {files[stem].path.rsplit('/', 1)[-1]}")
                )
            else:
                files[stem] = StoredFile(stem, full, int(info.get("size") or 0), file_stamp(info))
        return list(files.values()), rejected

    def list_folder(self, folder: str) -> list[str]:
        """Full paths of the files under ``folder`` ([] when there are none). On S3 one listing whose key prefix
        is the folder: s3fs's ``ls`` of a prefix with no keys lists the parent folder too (to tell a missing
        folder from a file), and ``tasks/by-fingerprint/`` grows with every request ever made."""
        if self.url.startswith("s3://"):
            parent, _, name = folder.rstrip("/").rpartition("/")
            return sorted(self.fs.find(parent, prefix=f"{name}/"))
        try:
            return sorted(self.fs.find(folder))
        except FileNotFoundError:
            return []

    def stamps(self, folder: str, prefixes: Iterable[str], skip: Callable[[str], bool] | None = None) -> dict[str, str]:
        """Path -> ``file_stamp`` of the files directly in ``folder`` whose names start with one of ``prefixes``
        ({} when there are none), less those whose names ``skip`` is true of: on S3 one listing per prefix, which
        the store filters (a folder of ten thousand files is ten pages of listing, a prefix of it one); elsewhere
        one listing of names and a stat per match not skipped."""
        wanted = tuple(prefixes)
        base = folder.rstrip("/")

        def kept(name: str) -> bool:
            return name.startswith(wanted) and not (skip is not None and skip(name))

        if self.url.startswith("s3://"):
            found: dict[str, Any] = {}
            for prefix in wanted:
                with contextlib.suppress(FileNotFoundError):
                    found.update(self.fs.find(base, prefix=prefix, detail=True, maxdepth=1))
            return {
                p: file_stamp(info)
                for p, info in found.items()
                if info.get("type") != "directory" and kept(p.rsplit("/", 1)[-1])
            }
        if self.is_local:  # os.listdir: fsspec's ls of a local folder costs four times as much (18 ms at 10,000)
            try:
                names = [f"{base}/{name}" for name in os.listdir(base) if kept(name)]
            except FileNotFoundError:
                return {}
            stat = _local_info
        else:
            try:
                listed = self.fs.ls(base, detail=False)
            except FileNotFoundError:
                return {}
            names = [path for path in listed if kept(path.rsplit("/", 1)[-1])]
            stat = self.fs.info
        out: dict[str, str] = {}
        for path in names:
            with contextlib.suppress(FileNotFoundError):
                out[path] = file_stamp(stat(path))  # as fsspec's info gives them: the same stamp as a whole listing
        return out

    def scan_images(self) -> tuple[list[StoredFile], list[Rejected]]:
        return self._scan(layout.IMAGES, layout.IMAGE_EXTENSIONS)

    def scan_prompts(self) -> tuple[list[StoredFile], list[Rejected]]:
        return self._scan(layout.PROMPTS, layout.PROMPT_EXTENSIONS)

    # -- reading and writing -----------------------------------------------------------------------

    def read_bytes(self, full_path: str) -> bytes:
        return self.fs.cat_file(full_path)

    def write_bytes(self, full_path: str, data: bytes) -> None:
        with atomic_writer(self.fs, full_path) as fh:
            fh.write(data)

    def write_all(self, files: dict[str, bytes]) -> None:
        """Each file whole or not at all, in no particular order: concurrently on an object store (one round trip's
        wait for all of them), one after the other in a local folder."""
        if self.is_local:
            for full_path, data in files.items():
                self.write_bytes(full_path, data)
        else:
            self.fs.pipe(files)  # a PUT is whole or absent

    def exists(self, full_path: str) -> bool:
        return self.fs.exists(full_path)

    def presign(self, ref: str) -> str | None:
        """A time-limited GET URL for a stored object (S3), or None where storage cannot sign."""
        path = ref.split("://", 1)[-1] if "://" in ref else ref
        try:
            return self.fs.sign(path, expiration=self.presign_expiry_s)
        except NotImplementedError:
            return None

    def clip_path(self, prompt: str, image: str) -> str:
        return self.path(layout.clip(prompt, image))

    def sidecar_path(self, prompt: str, image: str) -> str:
        return layout.sidecar_of(self.clip_path(prompt, image))

    def version_path(self, prompt: str, image: str, fingerprint: str) -> str:
        """Where an earlier clip of this pair is kept when a changed request replaces it (never thrown away)."""
        return self.path(layout.kept_version(prompt, image, fingerprint))

    def remove_partials(self, full_path: str) -> list[str]:
        """Delete the ``<path>.part-*`` files a writer that died mid-write left (local folders only: object
        stores never show a partial upload). Call it only when that writer is known to be dead."""
        if not self.is_local:
            return []
        partials = self.fs.glob(f"{full_path}.part-*")
        for partial in partials:
            self.fs.rm(partial)
        return partials

    def copy_file(self, src: str, dst: str) -> None:
        """Copy a stored file (and nothing else); ``dst`` appears complete or not at all."""
        atomic_copy(self.fs, src, dst)

    # -- indexes of materialized sources (an optimisation: losing one only costs a re-read) -----------

    def read_index(self, path: str) -> dict[str, Any]:
        """A JSON object kept in storage as a cache: empty when missing or unreadable."""
        try:
            index = json.loads(self.read_bytes(self.path(path)))
        except (FileNotFoundError, ValueError):
            return {}
        return index if isinstance(index, dict) else {}

    def update_index(self, path: str, entries: Mapping[str, Any]) -> None:
        """Merge ``entries`` into the index at ``path``. Concurrent writers may lose each other's entries:
        an index is a cache, and a lost entry is found again by reading the file it describes."""
        if entries:
            merged = {**self.read_index(path), **entries}
            self.write_bytes(self.path(path), json.dumps(merged, sort_keys=True).encode())

    def read_stamps(self, asset: str) -> dict[str, str]:
        return self.read_index(layout.stamps(asset))

    def update_stamps(self, asset: str, stamps: dict[str, str]) -> None:
        self.update_index(layout.stamps(asset), stamps)
