"""One contract suite for every store."""

from __future__ import annotations

import pathlib

import pytest

from glint import errors
from glint.stores.filesystem import FilesystemStore
from glint.stores.memory import MemoryStore


@pytest.fixture(params=["filesystem", "memory"])
def store(request: pytest.FixtureRequest, tmp_path: pathlib.Path) -> FilesystemStore | MemoryStore:
    if request.param == "filesystem":
        return FilesystemStore(tmp_path / "images")
    return MemoryStore()


def _write(store: FilesystemStore | MemoryStore, key: str, *parts: bytes) -> str:
    with store.writer(key) as writer:
        for part in parts:
            writer.write(part)
        return writer.commit()


def test_written_bytes_read_back(store: FilesystemStore | MemoryStore) -> None:
    location = _write(store, "img-1", b"hello ", b"world")
    assert b"".join(store.read(location)) == b"hello world"
    assert store.size(location) == 11
    assert list(store.locations()) == [location]


def test_read_range_and_small_chunks(store: FilesystemStore | MemoryStore) -> None:
    location = _write(store, "img-1", bytes(range(256)) * 4)
    assert b"".join(store.read(location, offset=10, length=5)) == bytes(range(10, 15))
    chunks = list(store.read(location, chunk_size=100))
    assert [len(c) for c in chunks] == [100] * 10 + [24]


def test_uncommitted_writer_leaves_nothing(store: FilesystemStore | MemoryStore) -> None:
    with pytest.raises(RuntimeError), store.writer("img-1") as writer:
        writer.write(b"partial")
        raise RuntimeError("boom")
    assert list(store.locations()) == []
    with pytest.raises(errors.StoreError):
        store.size("img-1")


def test_delete_is_idempotent(store: FilesystemStore | MemoryStore) -> None:
    location = _write(store, "img-1", b"x")
    store.delete(location)
    store.delete(location)
    with pytest.raises(errors.StoreError):
        list(store.read(location))


def test_rewrite_replaces_whole_object(store: FilesystemStore | MemoryStore) -> None:
    _write(store, "img-1", b"first version, long")
    location = _write(store, "img-1", b"second")
    assert b"".join(store.read(location)) == b"second"


def test_filesystem_never_shows_partial_file_under_final_name(tmp_path: pathlib.Path) -> None:
    store = FilesystemStore(tmp_path)
    writer = store.writer("img-1")
    writer.write(b"x" * 1000)
    assert not (tmp_path / "img-1").exists()
    assert len(list(tmp_path.iterdir())) == 1  # only the hidden temporary file
    assert list(store.locations()) == []
    writer.commit()
    assert (tmp_path / "img-1").read_bytes() == b"x" * 1000


def test_filesystem_removes_leftover_temporary_files(tmp_path: pathlib.Path) -> None:
    store = FilesystemStore(tmp_path)
    store.writer("img-1").write(b"left by a crash")  # never committed nor aborted
    assert store.remove_temporary_files() == 1
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("key", ["../etc/passwd", "", ".hidden", "a/b", "nul\x00"])
def test_filesystem_refuses_keys_that_leave_its_directory(tmp_path: pathlib.Path, key: str) -> None:
    store = FilesystemStore(tmp_path / "images")
    with pytest.raises(errors.StoreError):
        store.writer(key)
    with pytest.raises(errors.StoreError):
        store.delete(key)


def test_filesystem_delete_removes_unfinished_writes_of_that_key(tmp_path: pathlib.Path) -> None:
    store = FilesystemStore(tmp_path)
    store.writer("img-1").write(b"left by a killed run")
    store.writer("img-10").write(b"another image's write")  # a key sharing the prefix
    store.delete("img-1")
    remaining = [p.name for p in tmp_path.iterdir()]
    assert len(remaining) == 1 and remaining[0].startswith(".tmp-img-10-")
