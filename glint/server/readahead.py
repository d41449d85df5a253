"""Reading a file into the page cache ahead of its ``sendfile(2)``, several windows at once.

The event loop's ``sendfile(2)`` must never wait for the disk (it would hold up every other
request of the server), so a download is sent a window at a time, and each window is read into
the page cache beforehand by a worker thread. :class:`ReadAhead` keeps :data:`DEPTH` windows
being read while the loop sends the one before them: the disk is never idle waiting for the
send, and it has several reads to work on at once. The bench host's virtio disk read a cold 1 GiB
file at 955 MiB/s with 3 readers of 8 MiB windows against 513 with one (BENCHMARKS.md,
2026-12-08; end to end, on that loaded host, the download gained 1.1-1.3x over one read at a
time, within the noise: the CPU, not the disk, bound it there). What it holds is page cache
only, ``DEPTH`` windows a download (24 MiB): no bytes pass through Python.

A download that ends early (the client gone, an error, a cancel) stops its reads within a
:data:`STEP` and waits for them before the file is closed: a thread never reads a descriptor
that may since have been closed or reused.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import threading
from collections.abc import Iterator

# What one loop.sendfile sends, once read into the page cache.
WINDOW = 8 * 1024 * 1024
# Windows read at once ahead of the one being sent (the device's queue depth for a download).
DEPTH = 3
# What one read-ahead call asks of the kernel: how soon a stopped read notices.
STEP = 2 * 1024 * 1024


def windows(offset: int, count: int, size: int) -> Iterator[tuple[int, int]]:
    """``(offset, length)`` of each window of ``count`` bytes from ``offset``, in order: they
    cover the range exactly once, each ``size`` long but the last."""
    end = offset + count
    while offset < end:
        yield offset, min(size, end - offset)
        offset += size


class ReadAhead:
    """``fd``'s windows ``spans``, each given by ``async for`` once a worker thread has read it
    into the page cache; the next ``depth`` are being read meanwhile.

    Use as ``async with``: leaving stops the reads and waits for every one started."""

    def __init__(self, loop: asyncio.AbstractEventLoop, fd: int,
                 spans: Iterator[tuple[int, int]], depth: int = DEPTH) -> None:
        self._loop, self._fd, self._spans, self._depth = loop, fd, spans, depth
        self._reading: collections.deque[tuple[tuple[int, int], asyncio.Future[None]]] = (
            collections.deque())
        self._stop = threading.Event()

    async def __aenter__(self) -> ReadAhead:
        self._fill()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __aiter__(self) -> ReadAhead:
        return self

    async def __anext__(self) -> tuple[int, int]:
        """The next window, once it is in the page cache; one more starts being read."""
        if not self._reading:
            raise StopAsyncIteration
        span, reading = self._reading[0]
        await asyncio.shield(reading)  # (a cancel must leave the read for close to wait for)
        self._reading.popleft()
        self._fill()
        return span

    async def close(self) -> None:
        """Stop the reads and wait for their threads: the file may be closed after this."""
        self._stop.set()
        if self._reading:
            await asyncio.wait([reading for _, reading in self._reading])
            self._reading.clear()

    def _fill(self) -> None:
        # In the loop's own executor, not the threads Starlette runs endpoints in: a slow disk
        # then holds up downloads, never the rest of the API.
        while len(self._reading) < self._depth and not self._stop.is_set():
            span = next(self._spans, None)
            if span is None:
                return
            self._reading.append((span, self._loop.run_in_executor(
                None, into_page_cache, self._fd, *span, self._stop)))


def advise_sequential(fd: int) -> None:
    """Tell the kernel ``fd`` is read from start to end: it reads ahead further (twice the
    device's ``read_ahead_kb``). Advice only: where it is refused (or missing), nothing changes."""
    if hasattr(os, "posix_fadvise"):
        with contextlib.suppress(OSError):
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)


def into_page_cache(fd: int, offset: int, size: int,
                    stop: threading.Event | None = None) -> None:
    """Read ``size`` bytes of ``fd`` from ``offset`` into the page cache; blocks until they are,
    or until ``stop`` is set (checked every :data:`STEP`).

    By sendfile(2) to /dev/null: the kernel reads the pages as the send will and copies no bytes
    (posix_fadvise's ``WILLNEED`` would only start the reads, and measured no faster; a read into
    a buffer would copy every byte into Python). Where that fails (not Linux) the send reads for
    itself, as it does for any error here.
    """
    with contextlib.suppress(OSError), open(os.devnull, "wb", buffering=0) as null:
        while size > 0 and not (stop is not None and stop.is_set()):
            done = os.sendfile(null.fileno(), fd, offset, min(size, STEP))
            if not done:  # the file ends here
                return
            offset, size = offset + done, size - done
