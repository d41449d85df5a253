"""Hand a request body to blocking code running in its own thread, with backpressure.

The event loop reads the body (Starlette's ``request.stream()``) and joins what arrives into
batches of about ``BATCH_SIZE`` bytes; a worker thread consumes them as an ordinary iterator,
so hashing and disk writes happen off the event loop, overlapping the network read. At most
``DEPTH`` batches wait between the two: memory stays flat whatever the body's size, and a slow
disk slows the client down rather than filling the server.

If the client goes away, the worker's iterator raises and the worker cleans up; if the worker
stops early (a size cap, say), the loop stops reading and its error is the request's.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import queue
import threading
from collections.abc import Callable, Iterator
from typing import TypeVar

from starlette.requests import ClientDisconnect, Request

from glint import errors

T = TypeVar("T")
BATCH_SIZE = 2 * 1024 * 1024
DEPTH = 4
_END = object()


async def consume(request: Request, work: Callable[[Iterator[bytes]], T]) -> T:
    """Run ``work(body_chunks)`` in a new thread, feeding it the body; return its result.

    Returns (or raises) only once ``work`` has finished, so its cleanup is done by then,
    except when this coroutine is cancelled: then the worker is told to stop and cleans up
    on its own.
    """
    loop = asyncio.get_running_loop()
    bridge = _Bridge(loop)
    outcome: asyncio.Future[T] = loop.create_future()
    threading.Thread(target=_run, args=(work, bridge, outcome), name="glint-upload",
                     daemon=True).start()
    try:
        await _feed(request, bridge)
    except ClientDisconnect as exc:
        bridge.fail(exc)
    except BaseException as exc:
        bridge.fail(exc)
        raise
    try:
        return await outcome
    except ClientDisconnect:
        raise errors.BadRequest("The client disconnected before sending all the data.") from None


async def _feed(request: Request, bridge: _Bridge) -> None:
    pending: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        if bridge.closed:  # the worker has stopped: its error answers the request
            return
        pending.append(chunk)
        size += len(chunk)
        if size >= BATCH_SIZE:
            if not await bridge.put(pending):
                return
            pending, size = [], 0
    if pending and not await bridge.put(pending):
        return
    bridge.end()


class _Bridge:
    """A queue from the event loop to one thread; slots are counted on the loop's side."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._items: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._slots = asyncio.Semaphore(DEPTH)
        self.closed = False

    async def put(self, parts: list[bytes]) -> bool:
        """Hand over one batch; False once the worker has stopped (stop reading then)."""
        await self._slots.acquire()
        if self.closed:
            return False
        self._items.put(parts)
        return True

    def end(self) -> None:
        self._items.put(_END)

    def fail(self, exc: BaseException) -> None:
        self._items.put(_Failure(exc))

    def close(self) -> None:
        """On the loop, when the worker has stopped: wake a ``put`` waiting for a slot."""
        self.closed = True
        self._slots.release()

    def chunks(self) -> Iterator[bytes]:
        """The body, in the worker thread."""
        while True:
            item = self._items.get()
            if item is _END:
                return
            if isinstance(item, _Failure):
                raise item.exc
            assert isinstance(item, list)
            self._call_soon(self._slots.release)
            yield item[0] if len(item) == 1 else b"".join(item)

    def _call_soon(self, callback: Callable[[], object]) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is gone (shutdown): nobody waits
            self._loop.call_soon_threadsafe(callback)


class _Failure:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


def _run(work: Callable[[Iterator[bytes]], T], bridge: _Bridge,
         outcome: asyncio.Future[T]) -> None:
    result: T | None = None
    error: BaseException | None = None
    try:
        result = work(bridge.chunks())
    except BaseException as exc:
        error = exc
    bridge._call_soon(functools.partial(_settle, bridge, outcome, result, error))


def _settle(bridge: _Bridge, outcome: asyncio.Future[T], result: T | None,
            exc: BaseException | None) -> None:
    bridge.close()
    if outcome.cancelled():
        return
    if exc is not None:
        outcome.set_exception(exc)
    else:
        outcome.set_result(result)  # type: ignore[arg-type]
