"""seedance_pipeline/storage/atomic.py in a local folder: a file appears whole or not at all, its folder is made
when missing (also when deleted after an earlier write), and a failed write leaves the old file and no part file."""

from __future__ import annotations

import shutil

import fsspec
import pytest

from seedance_pipeline.storage.atomic import atomic_writer

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
