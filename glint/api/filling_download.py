"""A download that fills the image cache, sent to the client out of the cache file.

When the server takes ``http.response.zerocopysend`` (:mod:`glint.api.sendfile`), a thread of
the response's own (the pump) writes the store's chunks to the fill's file, and the event loop
sends that file by ``sendfile(2)`` a little behind the writes. The bytes reach the client from
the page cache: the loop copies none of them through Python and takes no chunk from a worker
thread, which is what the streamed download spent most of its CPU on besides the store's
read and the fill's write (BENCHMARKS.md, issue 16). The fill's hashers read the same pages.

The pump stays at most :data:`LEAD` bytes ahead of what was sent, so a client that stops
reading stops the fill too (abandoned after ``image_cache_stall_time``), as with the streamed
download. A fill that fails (a full disk) stops filling, never the download: the pump then
hands the rest of the chunks to the loop, which sends them from memory, holding at most
:data:`MEMORY_LEAD` of them (a slow client then slows the store's read). A client that leaves
stops the pump, and the unfinished fill is removed.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import threading
from collections.abc import Iterator, Mapping
from typing import BinaryIO

from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from glint.api.sendfile import ZEROCOPYSEND
from glint.cache.fill import Fill

MiB = 1024 * 1024
LEAD = 32 * MiB  # how far the writes may run ahead of the sends
# Chunks held in memory for the sender once the fill failed: the file's lead costs page
# cache, this costs heap, for as long as the client takes to read it.
MEMORY_LEAD = 2 * MiB
SEND_AT_LEAST = 8 * MiB  # bytes written before a send (fewer at the end): fewer, larger sends


class FillingResponse(Response):
    """The image's ``chunks`` written into ``fill`` and sent from its file (``zerocopysend``).

    Only for servers that offer the extension (:func:`glint.api.sendfile.offered`), and only
    for a GET (a HEAD would send nothing and so never let the pump past its lead).
    """

    def __init__(self, fill: Fill, chunks: Iterator[bytes], status_code: int,
                 headers: Mapping[str, str], media_type: str) -> None:
        self.fill, self.chunks = fill, chunks
        super().__init__(status_code=status_code, headers=headers, media_type=media_type)
        self.headers["content-length"] = str(fill.expected.size)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        feed = _Feed(asyncio.get_running_loop())
        pump = threading.Thread(target=_pump, args=(self.fill, self.chunks, feed),
                                name="glint-cache-fill", daemon=True)
        with self.fill.reader() as file:
            pump.start()
            listener = asyncio.ensure_future(_until_disconnected(receive, feed))
            try:
                await send({"type": "http.response.start", "status": self.status_code,
                            "headers": self.raw_headers})
                await _send_body(file, feed, send)
            finally:
                listener.cancel()
                feed.stop()


async def _send_body(file: BinaryIO, feed: _Feed, send: Send) -> None:
    sent = 0
    while (item := await feed.next(sent)) is not None:
        if isinstance(item, int):  # the file holds the bytes up to ``item``
            message: Message = {"type": ZEROCOPYSEND, "file": file, "offset": sent,
                                "count": item - sent, "more_body": True}
            count = item - sent
        else:
            message, count = {"type": "http.response.body", "body": item,
                              "more_body": True}, len(item)
        await send(message)
        sent += count
        feed.sent(sent)
    await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _until_disconnected(receive: Receive, feed: _Feed) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    feed.stop()


def _pump(fill: Fill, chunks: Iterator[bytes], feed: _Feed) -> None:
    """(Its own thread.) The store's chunks into the fill's file, or once the fill failed to
    the sender; at the end, the fill verified and kept (or discarded)."""
    try:
        complete = _write_all(fill, chunks, feed)
    except BaseException as exc:  # the store failed midway: the sender raises it
        fill.abort()
        feed.end(exc)
        return
    if not complete:  # the response ended first (the client left)
        fill.abort()
        return
    feed.end()
    fill.commit()


def _write_all(fill: Fill, chunks: Iterator[bytes], feed: _Feed) -> bool:
    """Whether every chunk was passed on (False: the response ended first)."""
    try:
        for chunk in chunks:
            if not feed.wait_for_room():
                return False
            if fill.write_through(chunk):
                feed.wrote(len(chunk))
            else:
                feed.hand_over(chunk)
        return True
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()  # (the store's connection goes back to its pool)


class _Feed:
    """What the pump has done, told to the sender on the event loop; and what was sent,
    told to the pump (which waits while it is :data:`LEAD` ahead)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._woken = asyncio.Event()  # (the loop's side)
        self._changed = threading.Condition()
        self._written = 0  # bytes in the file
        self._handed = 0  # bytes the pump passed on (written or in memory)
        self._memory: collections.deque[bytes] = collections.deque()  # after a failed fill
        self._in_memory = 0  # bytes in ``_memory``
        self._sent = 0
        self._ended = False
        self._error: BaseException | None = None
        self._waiting = False  # the sender waits for news: only then is the loop woken
        self.stopped = False

    # -- the pump's side ---------------------------------------------------------------

    def wait_for_room(self) -> bool:
        """Once the writes are less than LEAD ahead of the sends; False: the response is over."""
        with self._changed:
            self._changed.wait_for(lambda: self.stopped or self.has_room())
            return not self.stopped

    def has_room(self) -> bool:
        """(Holding the lock.) Whether the pump may pass on another chunk."""
        return self._handed - self._sent < LEAD and self._in_memory < MEMORY_LEAD

    def wrote(self, count: int) -> None:
        with self._changed:
            self._written += count
            self._handed += count
            self._wake()

    def hand_over(self, chunk: bytes) -> None:
        with self._changed:
            self._memory.append(chunk)
            self._in_memory += len(chunk)
            self._handed += len(chunk)
            self._wake()

    def end(self, error: BaseException | None = None) -> None:
        with self._changed:
            self._ended, self._error = True, error
            self._wake()

    def _wake(self) -> None:
        # (Holding the lock.) A wake-up costs the loop a turn: one a chunk would be a
        # thousand a GiB, most of them while the sender is busy sending anyway.
        if self._waiting:
            self._waiting = False
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
                self._loop.call_soon_threadsafe(self._woken.set)

    # -- the sender's side -------------------------------------------------------------

    async def next(self, sent: int) -> int | bytes | None:
        """What to send after ``sent`` bytes: up to where the file is written (an int), a
        chunk from memory, or None at the end (the pump's error raised, if it had one)."""
        while True:
            self._woken.clear()
            with self._changed:
                if self.stopped:
                    return None
                if self._written - sent >= SEND_AT_LEAST or (
                        self._written > sent and (self._ended or self._memory)):
                    return self._written
                if self._memory:
                    chunk = self._memory.popleft()
                    self._in_memory -= len(chunk)
                    return chunk
                if self._ended:
                    if self._error is not None:
                        raise self._error
                    return None
                self._waiting = True
            await self._woken.wait()

    def sent(self, count: int) -> None:
        with self._changed:
            self._sent = count
            self._changed.notify_all()

    def stop(self) -> None:
        with self._changed:
            self.stopped = True
            self._changed.notify_all()
            self._wake()
