"""Segmented writes (glint.stores.segments): sizes, bounded memory, failures.

The object stores run this code on a real Swift in tests/integration/test_object_stores.py;
here a writer that keeps segments in a dict shows what no server can be made to do on cue.
"""

from __future__ import annotations

import threading

import pytest

from glint import errors
from glint.stores import segments

MiB = segments.MiB


class DictWriter(segments.SegmentedWriter):
    """Segments in a dict; ``gate`` holds uploads back, ``fail_at`` makes one fail."""

    def __init__(self, segment_size: int = MiB, in_flight: int = 2, fail_at: int | None = None,
                 wrong_etag: bool = False) -> None:
        super().__init__(store="dict", segment_size=segment_size, in_flight=in_flight)
        self.parts: dict[int, bytes] = {}
        self.gate = threading.Event()
        self.gate.set()
        self.fail_at = fail_at
        self.wrong_etag = wrong_etag
        self.most_held = 0
        self.discarded: list[int] | None = None
        self.result: bytes | None = None

    def _put_segment(self, number: int, data: memoryview) -> str:
        self.most_held = max(self.most_held, self._held)
        self.gate.wait(5)
        if number == self.fail_at:
            raise ConnectionResetError("reset by peer")
        self.parts[number] = bytes(data)  # the buffer is reused once this returns
        md5 = segments.md5(data)
        self.check_etag(f"segment {number}", "0" * 32 if self.wrong_etag else f'"{md5}"', md5)
        return md5

    def _put_single(self, data: memoryview) -> str:
        self.result = bytes(data)
        return "single"

    def _put_manifest(self, parts: list[segments.Segment]) -> str:
        self.result = b"".join(self.parts[p.number] for p in parts)
        return "manifest"

    def _discard(self, parts: list[segments.Segment]) -> None:
        self.discarded = sorted(self.parts)

    def _error(self, exc: Exception) -> errors.StoreError:
        return errors.StoreError(f"dict store: {segments.describe(exc)}")


def test_segment_sizes_stay_fixed_then_grow_to_reach_a_terabyte_in_1000_segments() -> None:
    sizes = [segments.segment_size(n, 8 * MiB) for n in range(1, segments.MAX_SEGMENTS + 1)]
    assert set(sizes[:segments.STEADY_SEGMENTS]) == {8 * MiB}
    assert sizes[segments.STEADY_SEGMENTS] == 16 * MiB
    assert max(sizes) == segments.MAX_SEGMENT_SIZE
    assert sum(sizes) >= 1024**4


def test_small_data_is_one_plain_object() -> None:
    writer = DictWriter()
    writer.write(b"small")
    assert writer.commit() == "single" and writer.result == b"small"


def test_segments_join_up_whatever_the_write_sizes() -> None:
    data = bytes(range(256)) * (4 * MiB // 256) + b"tail"
    writer = DictWriter()
    for i in range(0, len(data), 300_000):
        writer.write(memoryview(data)[i:i + 300_000])
    assert writer.commit() == "manifest" and writer.result == data
    assert [len(p) for _, p in sorted(writer.parts.items())] == [MiB] * 4 + [4]


def test_memory_stays_within_the_segments_in_flight() -> None:
    writer = DictWriter(in_flight=2)
    writer.gate.clear()
    done = threading.Event()

    def produce() -> None:
        for _ in range(8):
            writer.write(b"x" * MiB)
        done.set()

    thread = threading.Thread(target=produce)
    thread.start()
    assert not done.wait(0.5)  # blocked: two segments wait for the server
    writer.gate.set()
    thread.join(5)
    assert done.is_set() and writer.most_held <= 2 * MiB
    writer.commit()


def test_a_failed_segment_fails_the_write_and_discards_the_others() -> None:
    writer = DictWriter(fail_at=2)
    with pytest.raises(errors.StoreError, match="dict store: cannot reach"), writer:
        for _ in range(6):
            writer.write(b"x" * MiB)
        writer.commit()
    assert writer.discarded is not None and 2 not in writer.discarded


def test_a_segment_stored_with_another_etag_fails_the_write() -> None:
    writer = DictWriter(wrong_etag=True)
    with pytest.raises(errors.StoreError, match=r"segment \d was stored with ETag"), writer:
        writer.write(b"x" * (3 * MiB))
        writer.commit()


def test_segment_buffers_are_reused_and_bounded_by_the_segments_in_flight() -> None:
    data = bytes(range(256)) * (10 * MiB // 256)
    writer = DictWriter(in_flight=2)
    for i in range(0, len(data), 300_000):
        writer.write(data[i:i + 300_000])
    assert writer.commit() == "manifest" and writer.result == data  # no buffer overwritten early
    assert writer.buffers.allocated <= 3  # two uploading, one being filled, for ten segments


def test_a_failed_segment_gives_its_buffer_back() -> None:
    writer = DictWriter(in_flight=2, fail_at=1)
    with pytest.raises(errors.StoreError), writer:
        for _ in range(6):
            writer.write(b"x" * MiB)
        writer.commit()
    # every buffer is back in the pool: none still held by an upload thread or a failed segment
    assert 0 < writer.buffers.allocated <= 3
    assert writer.buffers.idle == writer.buffers.allocated


def test_a_write_of_a_view_is_copied_before_the_caller_reuses_its_buffer() -> None:
    source = bytearray(b"a" * (MiB + 10))
    writer = DictWriter()
    writer.write(memoryview(source))
    source[:] = b"b" * len(source)  # the caller's read buffer, refilled
    writer.commit()
    assert writer.result == b"a" * (MiB + 10)


def test_buffers_of_another_size_are_not_reused() -> None:
    pool = segments.BufferPool()
    pool.give(pool.take(MiB))
    assert len(pool.take(2 * MiB)) == 2 * MiB and pool.allocated == 2
    assert pool.idle == 0


def test_exact_gives_a_whole_buffer_itself_and_copies_a_part() -> None:
    buffer = bytearray(b"abcd")
    assert segments.exact(memoryview(buffer)) is buffer
    assert segments.exact(memoryview(buffer)[:2]) == b"ab"
