"""Reads from the object stores (glint.stores.reads): exact chunks, the read-ahead taken by a
thread or by an event loop, errors passed on, a reader stopped when its consumer goes.

The stores read through it on a real Swift in tests/integration/test_object_stores.py.
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import threading
import time
from collections.abc import Iterator

import pytest

from glint import errors
from glint.stores import reads


def test_exact_chunks_cuts_and_joins() -> None:
    chunks = [b"ab", b"cdefg", b"h", b"ijklmnop"]
    assert list(reads.exact_chunks(iter(chunks), 3)) == [b"abc", b"def", b"ghi", b"jkl",
                                                            b"mno", b"p"]


def test_read_ahead_passes_errors_on_and_closes_once() -> None:
    closed: list[bool] = []

    def source() -> Iterator[bytes]:
        yield b"one"
        raise errors.StoreError("dropped")

    chunks = reads.read_ahead(source(), 2, on_close=lambda: closed.append(True))
    assert next(chunks) == b"one"
    with pytest.raises(errors.StoreError, match="dropped"):
        next(chunks)
    assert closed == [True]


def test_read_ahead_stops_reading_when_the_consumer_closes() -> None:
    closed = threading.Event()
    chunks = reads.read_ahead((hashlib.md5(bytes([i])).digest() for i in range(10**6)), 2,
                                 on_close=closed.set)
    next(chunks)
    chunks.close()
    assert closed.wait(2)


def test_an_event_loop_takes_the_read_ahead_with_async_for() -> None:
    # Starlette's StreamingResponse iterates an async iterable on the loop itself; a plain
    # iterator costs a hop to a worker thread and back for every chunk.
    closed: list[bool] = []
    wanted = [bytes([i]) * 1000 for i in range(50)]

    def source() -> Iterator[bytes]:
        for chunk in wanted:
            time.sleep(0.001)  # the consumer waits for most chunks
            yield chunk

    async def take() -> list[bytes]:
        return [chunk async for chunk in reads.read_ahead(
            source(), 2, on_close=lambda: closed.append(True))]

    assert asyncio.run(take()) == wanted
    assert closed == [True]


def test_the_async_read_ahead_passes_errors_on() -> None:
    closed: list[bool] = []

    def source() -> Iterator[bytes]:
        yield b"one"
        raise errors.StoreError("dropped")

    async def take() -> list[bytes]:
        got = []
        async for chunk in reads.read_ahead(source(), 2,
                                               on_close=lambda: closed.append(True)):
            got.append(chunk)
        return got

    with pytest.raises(errors.StoreError, match="dropped"):
        asyncio.run(take())
    assert closed == [True]


def test_a_read_ahead_dropped_midway_stops_reading() -> None:
    # A client that leaves mid-download: the response drops the iterator unfinished.
    closed = threading.Event()

    async def take_one() -> bytes:
        chunks = reads.read_ahead((bytes([i % 256]) for i in range(10**6)), 2,
                                     on_close=closed.set)
        return await chunks.__anext__()

    assert asyncio.run(take_one()) == b"\x00"
    gc.collect()
    assert closed.wait(2)


def test_closing_the_read_ahead_ends_an_async_consumer_waiting_for_a_chunk() -> None:
    never = threading.Event()

    def source() -> Iterator[bytes]:
        yield b"one"
        never.wait(5)  # a store that stopped sending
        yield b"late"

    async def take() -> list[bytes]:
        chunks = reads.read_ahead(source(), 2, on_close=lambda: None)
        got = [await chunks.__anext__()]
        asyncio.get_running_loop().call_later(0.05, chunks.close)
        got += [chunk async for chunk in chunks]
        return got

    try:
        assert asyncio.run(asyncio.wait_for(take(), 2)) == [b"one"]
    finally:
        never.set()
