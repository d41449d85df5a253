"""The single-pass copy: hashes, store bytes, limits, cancellation, and no thread left behind."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from glint import buffers, datapath, errors
from glint.stores.memory import MemoryStore

MiB = 1024 * 1024


def _datapath_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("glint-datapath")]


@pytest.fixture(autouse=True)
def _no_thread_leaks() -> Iterator[None]:
    yield
    assert _datapath_threads() == []


def _copy(chunks: list[bytes], algo: str = "sha512", size_cap: int = 1 << 40,
          **kwargs: Any) -> tuple[datapath.Digest, bytes]:
    store = MemoryStore()
    with store.writer("x") as writer:
        digest = datapath.copy(iter(chunks), writer, size_cap=size_cap, hash_algo=algo, **kwargs)
        writer.commit()
    return digest, store.blobs["x"]


def _split(data: bytes, sizes: list[int]) -> list[bytes]:
    chunks, start, i = [], 0, 0
    while start < len(data):
        size = sizes[i % len(sizes)]
        chunks.append(data[start:start + size])
        start += size
        i += 1
    return chunks


@pytest.mark.parametrize("chunks", [
    [],
    [b""],
    [b"a"],
    _split(os.urandom(3 * MiB + 17), [1, 7, 65_537, 0, MiB + 3, 999_999]),
    _split(os.urandom(5 * MiB), [2 * MiB]),
    [b"", b"xyz", b"", b"", b"q" * 4097],
], ids=["no-chunks", "one-empty-chunk", "one-byte", "odd-sizes", "big-chunks", "empty-between"])
@pytest.mark.parametrize("algo", ["sha512", "sha256", "md5"])
def test_hashes_and_bytes_match_hashlib(chunks: list[bytes], algo: str) -> None:
    data = b"".join(chunks)
    digest, stored = _copy(chunks, algo)
    assert stored == data
    assert digest == datapath.Digest(size=len(data), checksum=hashlib.md5(data).hexdigest(),
                                     hash_algo=algo, hash_value=hashlib.new(algo, data).hexdigest())


def test_size_cap_stops_reading_as_soon_as_it_is_crossed() -> None:
    pulled: list[int] = []

    def chunks() -> Iterator[bytes]:
        for i in range(100):
            pulled.append(i)
            yield b"x" * 1000

    with MemoryStore().writer("x") as writer, pytest.raises(errors.TooLarge) as caught:
        datapath.copy(chunks(), writer, size_cap=2500, hash_algo="sha512")
    assert "2500" in caught.value.message
    assert len(pulled) == 3


def test_size_cap_is_inclusive() -> None:
    digest, stored = _copy([b"x" * 1000, b"y" * 1500], size_cap=2500)
    assert digest.size == 2500 == len(stored)


def test_shorter_than_expected_names_both_sizes() -> None:
    with pytest.raises(errors.BadRequest) as caught:
        _copy([b"abc"], expected_size=10)
    assert "10" in caught.value.message and "3" in caught.value.message


def test_longer_than_expected_fails_without_reading_the_rest() -> None:
    pulled: list[int] = []

    def chunks() -> Iterator[bytes]:
        for i in range(10):
            pulled.append(i)
            yield b"z" * 100

    with MemoryStore().writer("x") as writer, pytest.raises(errors.BadRequest) as caught:
        datapath.copy(chunks(), writer, size_cap=10**6, hash_algo="md5", expected_size=150)
    assert "150" in caught.value.message
    assert len(pulled) == 2


def test_expected_size_met_exactly() -> None:
    digest, _ = _copy([b"ab", b"cd"], expected_size=4)
    assert digest.size == 4


def test_should_cancel_stops_the_copy() -> None:
    calls = 0

    def should_cancel() -> bool:
        nonlocal calls
        calls += 1
        return calls > 2

    chunks = [b"x" * MiB] * 10
    with pytest.raises(errors.ScriptError, match="cancelled"):
        _copy(chunks, should_cancel=should_cancel)


def test_progress_reports_bytes_read_up_to_the_total() -> None:
    seen: list[int] = []
    _copy([b"x" * MiB] * 3 + [b"y" * 10], progress=seen.append)
    assert seen == sorted(seen)
    assert seen[-1] == 3 * MiB + 10


class _FailingWriter:
    def __init__(self, fail_after: int) -> None:
        self.writes = 0
        self.fail_after = fail_after

    def write(self, data: bytes | memoryview) -> None:
        self.writes += 1
        if self.writes > self.fail_after:
            raise OSError(28, "No space left on device")


def test_a_failing_stage_stops_the_copy_and_its_error_surfaces() -> None:
    pulled = 0

    def chunks() -> Iterator[bytes]:
        nonlocal pulled
        for _ in range(1000):
            pulled += 1
            yield b"x" * MiB

    writer = _FailingWriter(fail_after=2)
    with pytest.raises(OSError, match="No space left"):
        datapath.copy(chunks(), writer, size_cap=1 << 40, hash_algo="sha512")
    assert pulled < 20  # stopped reading soon after the failure


def test_a_failing_source_stops_every_stage() -> None:
    def chunks() -> Iterator[bytes]:
        yield b"x" * MiB
        yield b"y" * MiB
        raise ConnectionResetError("peer went away")

    with MemoryStore().writer("x") as writer, pytest.raises(ConnectionResetError):
        datapath.copy(chunks(), writer, size_cap=1 << 40, hash_algo="sha512")


class _SlowWriter:
    def __init__(self) -> None:
        self.written = 0

    def write(self, data: bytes | memoryview) -> None:
        time.sleep(0.01)
        self.written += len(data)


def test_memory_stays_flat_when_the_store_is_slow() -> None:
    writer = _SlowWriter()
    ahead: list[int] = []

    def chunks() -> Iterator[bytes]:
        for i in range(40):
            ahead.append(i * MiB - writer.written)
            yield b"x" * MiB

    digest = datapath.copy(chunks(), writer, size_cap=1 << 40, hash_algo="md5")
    assert digest.size == writer.written == 40 * MiB
    assert max(ahead) <= (datapath.QUEUE_DEPTH + 2) * MiB


def test_free_memory_is_handed_back_once_a_copy_ends(monkeypatch: pytest.MonkeyPatch) -> None:
    released: list[int] = []
    monkeypatch.setattr(datapath, "release_free_memory", lambda: released.append(1))
    _copy([b"x" * MiB])
    with pytest.raises(errors.TooLarge):
        _copy([b"x" * MiB, b"y"], size_cap=MiB)
    assert len(released) == 2  # after a copy that failed too


def test_release_free_memory_runs_here() -> None:
    datapath.release_free_memory()  # glibc's malloc_trim, or nothing where there is none


class _CountingPool(buffers.Pool):
    def __init__(self, size: int, keep: int) -> None:
        super().__init__(size, keep)
        self.made = 0

    def take(self) -> buffers.Buffer:
        self.made += self.free == 0  # only the reader's thread takes
        return super().take()


def _pooled(pool: buffers.Pool, pieces: list[bytes]) -> Iterator[bytes]:
    """``pieces`` as an import's reader hands them on: each written into a pool buffer."""
    for piece in pieces:
        buffer = pool.take()
        buffer[:len(piece)] = piece
        yield buffers.view(buffer, len(piece))  # type: ignore[misc]


class _LateCopyWriter:
    """Keeps a copy of each chunk, made only after a pause: a buffer refilled meanwhile shows."""

    def __init__(self, fail_after: int | None = None) -> None:
        self.parts: list[bytes] = []
        self.fail_after = fail_after

    def write(self, data: bytes | memoryview) -> None:
        if self.fail_after is not None and len(self.parts) >= self.fail_after:
            raise OSError(28, "No space left on device")
        time.sleep(0.002)
        self.parts.append(bytes(data))


def test_a_lent_buffer_is_refilled_only_once_every_stage_is_done_with_it() -> None:
    pool = _CountingPool(MiB, keep=5)
    pieces = [bytes([i]) * MiB for i in range(40)]
    writer = _LateCopyWriter()
    digest = datapath.copy(_pooled(pool, pieces), writer, size_cap=1 << 40, hash_algo="sha512")
    data = b"".join(pieces)
    assert b"".join(writer.parts) == data
    assert (digest.checksum, digest.hash_value) == (hashlib.md5(data).hexdigest(),
                                                    hashlib.sha512(data).hexdigest())
    assert pool.made <= datapath.POOL_KEEP  # reused, not one per chunk
    assert pool.free == pool.made  # every one given back


class _ThreadWriter:
    def __init__(self) -> None:
        self.threads: set[threading.Thread] = set()

    def write(self, data: bytes | memoryview) -> None:
        self.threads.add(threading.current_thread())


def test_the_store_write_is_made_by_the_reading_thread() -> None:
    # One thread and one queue of buffers less per copy (BENCHMARKS.md, issue 18): the hashes
    # run in threads of their own, the write in the caller's.
    writer = _ThreadWriter()
    datapath.copy(iter([b"x" * MiB] * 4), writer, size_cap=1 << 40, hash_algo="sha512")
    assert writer.threads == {threading.current_thread()}


def test_small_lent_chunks_are_given_back_once_joined() -> None:
    pool = _CountingPool(MiB, keep=5)
    pieces = [bytes([i]) * (256 * 1024) for i in range(40)]
    digest, stored = _copy(list(_pooled(pool, pieces)))  # all out at once: 40 buffers
    assert stored == b"".join(pieces) and digest.size == 10 * MiB
    assert pool.free == 5
    writer = _LateCopyWriter()
    datapath.copy(_pooled(pool, pieces), writer, size_cap=1 << 40, hash_algo="md5")
    assert b"".join(writer.parts) == b"".join(pieces)
    assert pool.made == 40  # the second copy made none


def test_a_failing_copy_leaves_the_pool_bounded_and_reuses_nothing_still_queued() -> None:
    pool = _CountingPool(MiB, keep=5)
    pieces = [bytes([i]) * MiB for i in range(200)]
    writer = _LateCopyWriter(fail_after=3)
    with pytest.raises(OSError, match="No space left"):
        datapath.copy(_pooled(pool, pieces), writer, size_cap=1 << 40, hash_algo="sha512")
    assert writer.parts == pieces[:3]
    assert pool.made <= datapath.QUEUE_DEPTH + 3
    assert pool.free <= 5


class _ViewWriter(_LateCopyWriter):
    def __init__(self) -> None:
        super().__init__()
        self.buffers: set[int] = set()

    def write(self, data: bytes | memoryview) -> None:
        assert isinstance(data, memoryview)
        self.buffers.add(id(data.obj))
        super().write(data)


def test_small_chunks_are_batched_into_a_few_reused_buffers() -> None:
    pieces = [bytes([i]) * 100_000 for i in range(200)]  # 19 batches and a bit
    writer = _ViewWriter()
    digest = datapath.copy(iter(pieces), writer, size_cap=1 << 40, hash_algo="sha512")
    data = b"".join(pieces)
    assert b"".join(writer.parts) == data
    assert [len(p) for p in writer.parts] == [MiB] * 19 + [len(data) - 19 * MiB]
    assert digest.hash_value == hashlib.sha512(data).hexdigest()
    assert len(writer.buffers) <= datapath.POOL_KEEP


@pytest.mark.parametrize("kind", [bytearray, memoryview])
def test_a_reader_that_refills_its_own_buffer_gets_the_right_digest(kind: type) -> None:
    """A script's reader may hand big chunks of a buffer of its own (not glint's pool) and
    refill it for the next one: the hashes, taken by other threads, still see each chunk as
    it was (it was hashed from a view of the refilled buffer, or refused by an assert)."""
    parts = [os.urandom(datapath.BATCH_SIZE + 1000) for _ in range(4)]
    buffer = bytearray(len(parts[0]))

    def reader() -> Iterator[bytes]:
        for part in parts:
            buffer[:] = part
            yield kind(buffer)

    store = MemoryStore()
    with store.writer("x") as writer:
        digest = datapath.copy(reader(), writer, size_cap=1 << 40, hash_algo="sha512")
        writer.commit()
    whole = b"".join(parts)
    assert store.blobs["x"] == whole
    assert (digest.checksum, digest.hash_value) == (hashlib.md5(whole).hexdigest(),
                                                    hashlib.sha512(whole).hexdigest())
