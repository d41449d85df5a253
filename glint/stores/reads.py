"""Reads from the object stores (``swift``, ``s3``): read-ahead, exact chunks, ranged GETs.

A store's ``read`` returns a :class:`ReadAhead`: a thread reads the object's chunks a few
ahead of the consumer, which takes them as an iterator (a thread: a copy, a script, the
cache's fill) or as an async iterator (the event loop: a streamed download).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import threading
import weakref
from collections.abc import Callable, Iterator


def read_ahead(chunks: Iterator[bytes], depth: int, on_close: Callable[[], None]) -> ReadAhead:
    """``chunks``, read by a thread up to ``depth`` chunks ahead of the consumer.

    The network read of the next chunks overlaps whatever the consumer does with this one.
    ``on_close`` runs (on the reading thread) once the reading stops: at the end, on an error,
    or after the consumer closed the returned iterator early (or dropped it).
    """
    ahead = _Ahead(depth)
    threading.Thread(target=ahead.pump, args=(chunks, on_close), name="glint-read-ahead",
                     daemon=True).start()
    return ReadAhead(ahead)


class ReadAhead:
    """What :func:`read_ahead` returns: an iterator of the chunks, and an asynchronous one.

    A thread iterates it as any iterator. An event loop takes it with ``async for`` (as
    Starlette's ``StreamingResponse`` does when it may): each chunk is then handed from the
    reading thread to the loop directly, where a plain iterator would cost a hop to a worker
    thread of the loop's pool and back for every chunk (BENCHMARKS.md, "Object store
    downloads"). Use one way or the other, from one consumer.
    """

    def __init__(self, ahead: _Ahead) -> None:
        self._ahead = ahead
        # Dropped unfinished (a client that left mid-download): the reading stops.
        self._finalizer = weakref.finalize(self, ahead.stop)

    def __iter__(self) -> ReadAhead:
        return self

    def __next__(self) -> bytes:
        chunk = self._ahead.next()
        if chunk is None:
            raise StopIteration
        return chunk

    def __aiter__(self) -> ReadAhead:
        return self

    async def __anext__(self) -> bytes:
        chunk = await self._ahead.next_async()
        if chunk is None:
            raise StopAsyncIteration
        return chunk

    def close(self) -> None:
        """Stop reading (the reading thread ends and runs ``on_close``)."""
        self._finalizer()

    async def aclose(self) -> None:
        self.close()


class _Ahead:
    """The chunks read ahead, shared by the reading thread and the consumer (sync or async)."""

    def __init__(self, depth: int) -> None:
        self._depth = depth
        self._items: collections.deque[bytes | BaseException | None] = collections.deque()
        self._changed = threading.Condition()
        self._stopped = False  # by the consumer: the reading stops at its next chunk
        self._finished = False  # the consumer took the end (or an error)
        self._waiter: asyncio.Future[None] | None = None  # an async consumer waiting

    # -- the reading thread ----------------------------------------------------------------

    def pump(self, chunks: Iterator[bytes], on_close: Callable[[], None]) -> None:
        try:
            for chunk in chunks:
                if not self._put(chunk):
                    return
            self._put(None)
        except BaseException as exc:  # handed to the consumer
            self._put(exc)
        finally:
            on_close()

    def _put(self, item: bytes | BaseException | None) -> bool:
        """Queue ``item`` once there is room; False when the consumer stopped first."""
        with self._changed:
            self._changed.wait_for(lambda: self._stopped or len(self._items) < self._depth)
            if self._stopped:
                return False
            self._items.append(item)
            self._changed.notify_all()
            if self._waiter is not None:
                _wake_soon(self._waiter)
                self._waiter = None
            return True

    # -- the consumer ----------------------------------------------------------------------

    def next(self) -> bytes | None:
        """The next chunk (None at the end), waiting for it."""
        with self._changed:
            self._changed.wait_for(lambda: self._items or self._finished)
            return self._take()

    async def next_async(self) -> bytes | None:
        """:meth:`next` for a consumer on an event loop: awaits, never blocks the loop."""
        while True:
            with self._changed:
                if self._items or self._finished:
                    return self._take()
                waiter = self._waiter = asyncio.get_running_loop().create_future()
            try:
                await waiter
            finally:
                with self._changed:
                    if self._waiter is waiter:
                        self._waiter = None

    def _take(self) -> bytes | None:
        """(Holding the lock, with an item or finished.) The next chunk; None at the end; the
        reading's error raised."""
        if self._finished:
            return None
        item = self._items.popleft()
        self._changed.notify_all()
        if isinstance(item, bytes):
            return item
        self._finished = True
        self._stopped = True
        if item is None:
            return None
        raise item

    def stop(self) -> None:
        with self._changed:
            self._stopped = self._finished = True
            self._items.clear()
            self._changed.notify_all()
            if self._waiter is not None:  # an async consumer waiting ends its iteration
                _wake_soon(self._waiter)
                self._waiter = None


def _wake_soon(waiter: asyncio.Future[None]) -> None:
    def wake() -> None:
        if not waiter.done():
            waiter.set_result(None)

    with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
        waiter.get_loop().call_soon_threadsafe(wake)


def exact_chunks(chunks: Iterator[bytes], size: int) -> Iterator[bytes]:
    """``chunks`` cut and joined into chunks of ``size`` bytes (the last may be shorter)."""
    pending = bytearray()
    for chunk in chunks:
        if not pending and len(chunk) == size:
            yield chunk
            continue
        pending += chunk
        while len(pending) >= size:
            yield bytes(pending[:size])
            del pending[:size]
    if pending:
        yield bytes(pending)


def range_header(offset: int, length: int | None) -> dict[str, str]:
    """The HTTP ``Range`` header of a read from ``offset`` (``length`` bytes, or to the end);
    none for a whole object."""
    if not offset and length is None:
        return {}
    end = "" if length is None else str(offset + length - 1)
    return {"Range": f"bytes={offset}-{end}"}
