"""seedance_pipeline/storage/atomic.py in a local folder: a file appears whole or not at all, its folder is made
when missing (also when deleted after an earlier write), a failed write leaves the old file and no part file, and a
write (or copy) is fsynced before its rename and its folder after, new folders in their parents."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import fsspec
import pytest

from seedance_pipeline.storage.atomic import atomic_copy, atomic_writer

FS = fsspec.filesystem("file")


def _leftovers(folder) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if ".part-" in p.name)


def test_a_write_replaces_the_file_whole(tmp_path):
    path = tmp_path / "records" / "a.json"
    for data in (b"first version", b"second, longer version of it"):
        with atomic_writer(FS, str(path)) as fh:
            fh.write(data)
        assert path.read_bytes() == data
    assert _leftovers(tmp_path) == []


def test_a_missing_folder_is_made_even_after_it_was_deleted(tmp_path):
    path = tmp_path / "tasks" / "open" / "deep" / "b.json"
    with atomic_writer(FS, str(path)) as fh:
        fh.write(b"1")
    shutil.rmtree(tmp_path / "tasks")  # e.g. a person clearing the folder between two writes
    with atomic_writer(FS, str(path)) as fh:
        fh.write(b"2")
    assert path.read_bytes() == b"2"


def test_a_failed_write_keeps_the_old_file_and_leaves_no_part(tmp_path):
    path = tmp_path / "c.json"
    path.write_bytes(b"paid for")
    with pytest.raises(RuntimeError, match="boom"), atomic_writer(FS, str(path)) as fh:
        fh.write(b"half of a new ver")
        raise RuntimeError("boom")
    assert path.read_bytes() == b"paid for"
    assert _leftovers(tmp_path) == []


def test_a_reader_never_sees_the_file_before_it_is_whole(tmp_path):
    path = tmp_path / "d.mp4"
    with atomic_writer(FS, str(path)) as fh:
        fh.write(b"x" * 10_000)
        fh.flush()
        assert not path.exists()
        assert len(_leftovers(tmp_path)) == 1
    assert path.stat().st_size == 10_000


def _fsyncs(monkeypatch, target: Path) -> list[tuple[str, bool]]:
    """Each fsync as (what it syncs: a folder's path, or "part" for a part file; whether ``target`` existed then),
    read from /proc (Linux), then done for real."""
    calls: list[tuple[str, bool]] = []
    real = os.fsync

    def fsync(fd):
        where = os.readlink(f"/proc/self/fd/{fd}")
        calls.append(("part" if ".part-" in where else where, target.exists()))
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    return calls


def test_a_write_is_fsynced_before_its_rename_and_its_folder_after(tmp_path, monkeypatch):
    target = tmp_path / "tasks" / "days" / "d1" / "a.json"
    calls = _fsyncs(monkeypatch, target)
    with atomic_writer(FS, str(target)) as fh:
        fh.write(b"{}")
    # each new folder's entry made durable in its parent, the part file before the rename, its folder after it
    assert calls == [
        (str(tmp_path), False),
        (str(tmp_path / "tasks"), False),
        (str(tmp_path / "tasks" / "days"), False),
        ("part", False),
        (str(target.parent), True),
    ]
    calls.clear()
    with atomic_writer(FS, str(target)) as fh:  # into a folder that exists: the part file, then the folder
        fh.write(b"{}")
    assert calls == [("part", True), (str(target.parent), True)]


def test_a_copy_is_whole_and_durable(tmp_path, monkeypatch):
    src, dst = tmp_path / "a.mp4", tmp_path / "kept" / "a.mp4"
    src.write_bytes(b"m" * 100_000)
    calls = _fsyncs(monkeypatch, dst)
    atomic_copy(FS, str(src), str(dst))
    assert dst.read_bytes() == src.read_bytes()
    assert calls == [(str(tmp_path), False), ("part", False), (str(dst.parent), True)]
    assert _leftovers(tmp_path) == []
