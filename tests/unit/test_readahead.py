"""The download's read-ahead (:mod:`glint.server.readahead`): which windows it reads, how many
at once, and that it lets go of the file when the download ends early."""

from __future__ import annotations

import asyncio
import os
import pathlib
import threading
import time

import pytest

from glint.server import readahead


@pytest.mark.parametrize(("offset", "count", "size"), [
    (0, 0, 8), (0, 1, 8), (0, 8, 8), (0, 9, 8), (5, 100, 8), (3, 24, 8), (7, 7, 1),
    (1000, 3 * 1024 * 1024 + 12345, 1024 * 1024),
])
def test_windows_cover_the_range_exactly_once_in_order(offset: int, count: int,
                                                       size: int) -> None:
    spans = list(readahead.windows(offset, count, size))
    covered = [byte for start, length in spans for byte in range(start, start + length)]
    assert covered == list(range(offset, offset + count))
    assert all(length == size for _, length in spans[:-1])
    assert all(0 < length <= size for _, length in spans)


class Reads:
    """A stand-in for ``into_page_cache`` that records the spans read and how many ran at
    once; each read takes ``seconds``."""

    def __init__(self, seconds: float = 0.02) -> None:
        self.spans: list[tuple[int, int]] = []
        self.running = self.most = 0
        self.seconds = seconds
        self._lock = threading.Lock()

    def __call__(self, fd: int, offset: int, size: int,
                 stop: threading.Event | None = None) -> None:
        with self._lock:
            self.running += 1
            self.most = max(self.most, self.running)
        try:
            if not (stop is not None and stop.wait(self.seconds)):
                with self._lock:
                    self.spans.append((offset, size))
        finally:
            with self._lock:
                self.running -= 1


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> Reads:
    recorder = Reads()
    monkeypatch.setattr(readahead, "into_page_cache", recorder)
    return recorder


def run_ahead(reads: Reads, spans: list[tuple[int, int]], depth: int,
              stop_after: int | None = None) -> tuple[list[tuple[int, int]], list[bool]]:
    """Iterate a ReadAhead over ``spans``; the spans it gives, and for each whether it had
    been read (whole) when it was given."""
    given: list[tuple[int, int]] = []
    read_when_given: list[bool] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        async with readahead.ReadAhead(loop, 0, iter(spans), depth) as ahead:
            async for span in ahead:
                given.append(span)
                read_when_given.append(span in reads.spans)
                if stop_after is not None and len(given) == stop_after:
                    break
                await asyncio.sleep(0.005)  # the send
    asyncio.run(main())
    return given, read_when_given


def test_every_window_is_read_once_before_it_is_given(reads: Reads) -> None:
    spans = list(readahead.windows(0, 100, 8))
    given, read_when_given = run_ahead(reads, spans, depth=3)
    assert given == spans
    assert sorted(reads.spans) == spans
    assert all(read_when_given)  # each given only once it is in the page cache


def test_several_windows_are_read_at_once_but_no_more_than_depth(reads: Reads) -> None:
    run_ahead(reads, list(readahead.windows(0, 100, 8)), depth=3)
    assert 2 <= reads.most <= 3


def test_depth_one_reads_one_window_at_a_time(reads: Reads) -> None:
    spans = list(readahead.windows(0, 40, 8))
    assert run_ahead(reads, spans, depth=1)[0] == spans
    assert reads.most == 1


def test_a_download_ended_early_stops_and_waits_for_its_reads(reads: Reads) -> None:
    reads.seconds = 5  # reads that would outlast the test, unless stopped
    spans = list(readahead.windows(0, 1000, 8))
    start = time.monotonic()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        ahead = readahead.ReadAhead(loop, 0, iter(spans), 3)
        async with ahead:
            consumer = asyncio.ensure_future(ahead.__anext__())
            await asyncio.sleep(0.05)
            consumer.cancel()
            with pytest.raises(asyncio.CancelledError):
                await consumer
        assert reads.running == 0  # every thread done once the block is left

    asyncio.run(main())
    assert time.monotonic() - start < 2
    assert reads.spans == []  # all three stopped before they finished; none started after


def test_leaving_early_starts_no_more_reads(reads: Reads) -> None:
    spans = list(readahead.windows(0, 1000, 8))
    run_ahead(reads, spans, depth=3, stop_after=2)
    assert reads.running == 0
    assert len(reads.spans) <= 2 + 3  # the two given and at most the three read ahead


def test_into_page_cache_reads_to_the_end_of_a_short_file(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "data"
    path.write_bytes(os.urandom(5 * readahead.STEP + 7))
    with path.open("rb") as file:
        readahead.into_page_cache(file.fileno(), 0, 100 * readahead.STEP)  # returns at EOF


def test_into_page_cache_stopped_reads_nothing(tmp_path: pathlib.Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "data"
    path.write_bytes(b"x" * 1024)
    calls: list[int] = []
    real = os.sendfile

    def counting(out_fd: int, in_fd: int, offset: int | None, count: int) -> int:
        calls.append(count)
        return real(out_fd, in_fd, offset, count)

    monkeypatch.setattr(os, "sendfile", counting)
    stop = threading.Event()
    stop.set()
    with path.open("rb") as file:
        readahead.into_page_cache(file.fileno(), 0, 1024, stop)
    assert calls == []
