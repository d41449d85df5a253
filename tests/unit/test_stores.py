"""One contract suite for every store."""

from __future__ import annotations

import concurrent.futures
import errno
import os
import pathlib
import time

import pydantic
import pytest

from glint import errors
from glint import settings as settings_mod
from glint.stores import filesystem
from glint.stores.filesystem import TMP_PREFIX, FilesystemStore
from glint.stores.memory import MemoryStore
from glint.tasks import reaper
from tests.conftest import MakeGlint


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


def test_a_filesystem_read_is_advised_sequential(tmp_path: pathlib.Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    store = FilesystemStore(tmp_path / "images")
    location = _write(store, "img-1", b"x" * 100)
    advised: list[int] = []
    monkeypatch.setattr(os, "posix_fadvise", lambda fd, offset, length, advice:
                        advised.append(advice))
    assert b"".join(store.read(location, offset=10)) == b"x" * 90
    assert advised == [os.POSIX_FADV_SEQUENTIAL]


def test_a_filesystem_write_drops_the_pages_it_has_written_to_disk(
        tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # On a VM that hands free memory back to its host, a page cache that grows by the image
    # costs ~2 ms of CPU per MiB written (BENCHMARKS.md, issue 18 many imports at once).
    if not hasattr(os, "RWF_NOWAIT"):
        pytest.skip("no RWF_NOWAIT to ask the page cache with")
    monkeypatch.setattr(filesystem, "FLUSH_EVERY", 1024 * 1024)  # several flushes
    store, data = FilesystemStore(tmp_path), os.urandom(8 * 1024 * 1024)
    with store.writer("img") as writer:
        for start in range(0, len(data), 256 * 1024):
            writer.write(data[start:start + 256 * 1024])
        location = writer.commit()
    probe = bytearray(4096)
    fd = os.open(tmp_path / location, os.O_RDONLY)
    try:
        missing = []
        for offset in range(0, len(data), 64 * 1024):
            try:
                os.preadv(fd, [probe], offset, os.RWF_NOWAIT)
            except BlockingIOError:
                missing.append(offset)
    finally:
        os.close(fd)
    # The first 6 MiB were flushed and dropped (pages still in a CPU's batch may stay).
    assert len([offset for offset in missing if offset < 6 * 1024 * 1024]) > 48
    assert (tmp_path / location).read_bytes() == data


def test_a_filesystem_write_flushes_one_part_while_the_next_is_written(
        tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The writeback of each part is started, and waited for only a part later: the disk works
    # while the copy goes on (an fdatasync every part stopped the copy for the disk).
    monkeypatch.setattr(filesystem, "FLUSH_EVERY", 1024 * 1024)
    calls: list[tuple[int, int, int]] = []
    real = filesystem._sync_file_range()
    if real is None:
        pytest.skip("no sync_file_range here")

    def recording(fd: int, offset: int, count: int, flags: int) -> None:
        calls.append((offset // 1024 ** 2, count // 1024 ** 2, flags))
        real(fd, offset, count, flags)

    monkeypatch.setattr(filesystem, "_sync_file_range", lambda: recording)
    fdatasyncs: list[int] = []
    monkeypatch.setattr(os, "fdatasync", fdatasyncs.append)
    store = FilesystemStore(tmp_path)
    with store.writer("img") as writer:
        for _ in range(3):
            writer.write(b"x" * 1024 * 1024)
        writer.commit()
    start, wait = filesystem._WRITE, (filesystem._WAIT_BEFORE | filesystem._WRITE
                                      | filesystem._WAIT_AFTER)
    assert calls == [(0, 1, start), (1, 1, start), (0, 1, wait), (2, 1, start), (1, 1, wait)]
    assert fdatasyncs == []


@pytest.mark.parametrize("refusal", [errno.EINVAL, errno.ENOSYS])
def test_a_filesystem_without_sync_file_range_flushes_whole(
        tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, refusal: int) -> None:
    # A filesystem (or kernel) that refuses sync_file_range: each part is fdatasynced instead,
    # and the write goes on (the part waited for used to call it again, and fail the write).
    monkeypatch.setattr(filesystem, "FLUSH_EVERY", 1024 * 1024)

    def refused(fd: int, offset: int, count: int, flags: int) -> None:
        raise OSError(refusal, os.strerror(refusal))

    monkeypatch.setattr(filesystem, "_sync_file_range", lambda: refused)
    fdatasyncs: list[int] = []
    real = os.fdatasync
    monkeypatch.setattr(os, "fdatasync", lambda fd: (fdatasyncs.append(fd), real(fd)))
    store, data = FilesystemStore(tmp_path), os.urandom(3 * 1024 * 1024)
    with store.writer("img") as writer:
        for start in range(0, len(data), 1024 * 1024):
            writer.write(data[start:start + 1024 * 1024])
        location = writer.commit()
    assert len(fdatasyncs) == 3
    assert (tmp_path / location).read_bytes() == data


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


def _age(path: pathlib.Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_filesystem_sweep_removes_only_unfinished_writes_older_than_the_limit(
        tmp_path: pathlib.Path) -> None:
    store = FilesystemStore(tmp_path)
    old = store.writer("img-old")
    old.write(b"left by a run killed an hour ago")
    live = store.writer("img-live")
    live.write(b"another node is still writing this")
    location = _write(store, "img-done", b"committed long ago")
    _age(tmp_path / location, 7200)
    for entry in tmp_path.glob(f"{TMP_PREFIX}img-old-*"):
        _age(entry, 3601)
    assert store.remove_temporary_files(older_than=3600) == 1
    assert store.remove_temporary_files(older_than=3600) == 0  # a second sweep finds nothing
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names[0].startswith(f"{TMP_PREFIX}img-live-") and names[1:] == ["img-done"]
    live.write(b" and it finishes")
    live.commit()
    assert b"".join(store.read("img-live")).endswith(b"it finishes")


def test_filesystem_sweeps_on_many_nodes_at_once_remove_each_file_once(
        tmp_path: pathlib.Path) -> None:
    store = FilesystemStore(tmp_path)
    nodes = [FilesystemStore(tmp_path) for _ in range(4)]
    for i in range(40):
        store.writer(f"img-{i}").write(b"x")
    for entry in tmp_path.iterdir():
        _age(entry, 100)
    with concurrent.futures.ThreadPoolExecutor(len(nodes)) as pool:
        counts = list(pool.map(lambda node: node.remove_temporary_files(older_than=10), nodes))
    assert sum(counts) == 40 and list(tmp_path.iterdir()) == []


def test_reaper_pass_sweeps_old_unfinished_writes(make_glint: MakeGlint,
                                                  tmp_path: pathlib.Path) -> None:
    store = FilesystemStore(tmp_path / "shared")
    glint = make_glint(store=store, store_tmp_max_age=600,
                       task_time_limit=300, task_time_limit_grace=10)
    assert glint.reaper is not None
    store.writer("img-killed").write(b"a killed worker's write")
    store.writer("img-running").write(b"a running worker's write")
    (killed,) = (tmp_path / "shared").glob(f"{TMP_PREFIX}img-killed-*")
    _age(killed, 601)
    glint.reaper.run_once()
    left = [p.name for p in (tmp_path / "shared").iterdir()]
    assert len(left) == 1 and left[0].startswith(f"{TMP_PREFIX}img-running-")
    for entry in (tmp_path / "shared").iterdir():
        _age(entry, 601)
    glint.reaper.run_once()  # within SWEEP_INTERVAL of the last sweep: nothing happens
    assert len(list((tmp_path / "shared").iterdir())) == 1
    glint.reaper.sweep_store(clock=time.monotonic() + reaper.SWEEP_INTERVAL)
    assert list((tmp_path / "shared").iterdir()) == []


def test_store_tmp_max_age_must_outlast_the_task_time_limit() -> None:
    with pytest.raises(pydantic.ValidationError, match="store_tmp_max_age"):
        settings_mod.Settings(store_tmp_max_age=3600, task_time_limit=3600)


def test_a_writer_keeps_no_view_of_a_buffer_refilled_after_write(
        store: FilesystemStore | MemoryStore) -> None:
    # An import's reader refills its buffers once the data path is done with them (glint.buffers).
    buffer = bytearray(b"first ")
    with store.writer("img-1") as writer:
        writer.write(memoryview(buffer))
        buffer[:] = b"later "
        writer.write(memoryview(buffer)[:5])
        location = writer.commit()
    assert b"".join(store.read(location)) == b"first later"
