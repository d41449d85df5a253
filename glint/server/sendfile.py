"""The server half of sending response bodies by ``sendfile(2)`` (the app half, the response
that asks for it, is :mod:`glint.api.sendfile`).

uvicorn implements neither ASGI extension that hands a file to the server, so
:class:`SendfileProtocol`, its httptools protocol plus both, is part of what ``glint serve``
runs (:mod:`glint.server.protocol`):

- ``http.response.zerocopysend``: an open file, an offset and a count (glint's downloads,
  whole or one byte range, through :class:`glint.api.sendfile.SendfileResponse`);
- ``http.response.pathsend``: a path (what Starlette's ``FileResponse`` sends when offered).

The server sends the bytes with ``loop.sendfile`` and then ends the response as an empty final
``http.response.body`` would, so keep-alive, ``Content-Length`` checks and pipelining stay
uvicorn's. Only plain HTTP on a standard asyncio loop offers the extensions: over TLS asyncio
would copy the file through Python in small blocks, and uvloop has no ``sendfile``.

sendfile(2) reads the file in the thread that calls it, the event loop's. So that a file not in
the page cache (an image not read lately: the usual case) never makes the server's other
requests wait for the disk, the bytes go a :data:`WINDOW` at a time, each read into the page
cache by worker threads, several windows at once, while the one before them is sent
(:mod:`glint.server.readahead`). The file is advised as read sequentially
(``posix_fadvise(SEQUENTIAL)``: the kernel reads ahead twice as far).

This extends uvicorn's internals (``HttpToolsProtocol._start_asgi_task`` and the state of its
``RequestResponseCycle``), so ``pyproject.toml`` pins uvicorn's minor version. Should the hook
or that state change, no extension is offered and the protocol is uvicorn's own.
"""


from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Mapping
from typing import Any, BinaryIO, cast

from uvicorn._types import ASGI3Application, ASGIReceiveCallable, ASGISendEvent
from uvicorn._types import Scope as UvicornScope
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from glint.api.sendfile import PATHSEND, ZEROCOPYSEND
from glint.server import readahead

# What one loop.sendfile sends, once a worker thread has read it into the page cache, and how
# many windows are read at once ahead of it (readahead's docstring says why).
WINDOW = readahead.WINDOW
READS_AT_ONCE = readahead.DEPTH
# What the sends below read and write of uvicorn's RequestResponseCycle.
_CYCLE_STATE = ("scope", "transport", "flow", "disconnected", "response_started",
                "response_complete", "chunked_encoding", "expected_content_length")


class SendfileProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, offering ``zerocopysend`` and ``pathsend``, and with
    TCP_NODELAY on every connection.

    Serve with it: ``uvicorn.Config(app, http=SendfileProtocol)``.
    """

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        _no_delay(transport)

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: ASGI3Application) -> None:
        if (self.scheme == "http" and isinstance(self.loop, asyncio.BaseEventLoop)
                and all(hasattr(cycle, name) for name in _CYCLE_STATE)):
            cycle.scope.setdefault("extensions", {}).update({ZEROCOPYSEND: {}, PATHSEND: {}})
            app = _FileSends(app, cycle, self.loop)
        super()._start_asgi_task(cycle, app)


def _no_delay(transport: asyncio.BaseTransport) -> None:
    """Send small writes at once (TCP_NODELAY). asyncio sets it only on sockets whose protocol
    number says TCP, and the listening socket uvicorn binds for several API workers says 0: its
    connections waited for the client's delayed ACK after each response head (about 40 ms a
    keep-alive request)."""
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _FileSends:
    """``app`` with a ``send`` that takes the two file messages; the rest goes to uvicorn."""

    def __init__(self, app: ASGI3Application, cycle: RequestResponseCycle,
                 loop: asyncio.AbstractEventLoop) -> None:
        self.app, self.cycle, self.loop = app, cycle, loop

    async def __call__(self, scope: UvicornScope, receive: ASGIReceiveCallable,
                       _send: Any) -> None:
        await self.app(scope, receive, self.send)

    async def send(self, message: ASGISendEvent) -> None:
        event = cast(Mapping[str, Any], message)
        cycle = self.cycle
        if (event["type"] not in (ZEROCOPYSEND, PATHSEND) or not cycle.response_started
                or cycle.response_complete):
            await cycle.send(message)  # uvicorn's, with its errors for misplaced messages
        elif event["type"] == PATHSEND:
            # In a thread (as Starlette stats it): the file may be on a network filesystem.
            with await asyncio.to_thread(open, event["path"], "rb") as file:
                await self._send_file(file, 0, None, more_body=False)
        else:
            await self._send_file(event["file"], event.get("offset"), event.get("count"),
                                  event.get("more_body", False))

    async def _send_file(self, file: BinaryIO, offset: int | None, count: int | None,
                         more_body: bool) -> None:
        cycle = self.cycle
        if cycle.flow.write_paused and not cycle.disconnected:
            await cycle.flow.drain()
        if cycle.disconnected:
            return
        if cycle.chunked_encoding:
            raise RuntimeError("A file sent by sendfile needs a Content-Length header.")
        if cycle.scope["method"] != "HEAD":
            cycle.expected_content_length -= await self._sendfile(file, offset, count)
        await cycle.send({"type": "http.response.body", "body": b"", "more_body": more_body})

    async def _sendfile(self, file: BinaryIO, offset: int | None, count: int | None) -> int:
        """Send the bytes; the number sent (fewer when the file ends first)."""
        remaining = self.cycle.expected_content_length
        count = remaining if count is None else count
        if count > remaining:
            raise RuntimeError("Response content longer than Content-Length")
        transport = self.cycle.transport
        try:
            return await self._send_windows(file, file.tell() if offset is None else offset, count)
        except ConnectionError:  # the client went away: end quietly, as uvicorn's writes do
            self.cycle.disconnected = True
            transport.close()
            return 0
        except BaseException:  # a file error, a cancel: the body cannot be finished
            transport.close()
            raise

    async def _send_windows(self, file: BinaryIO, offset: int, count: int) -> int:
        """``loop.sendfile`` a window at a time, each read into the page cache beforehand
        (:class:`~glint.server.readahead.ReadAhead`), so the loop's sendfile(2) finds its pages
        there and does not wait for the disk."""
        sent, transport, fd = 0, self.cycle.transport, file.fileno()
        readahead.advise_sequential(fd)
        spans = readahead.windows(offset, count, WINDOW)
        async with readahead.ReadAhead(self.loop, fd, spans, READS_AT_ONCE) as ahead:
            async for start, size in ahead:
                if transport.is_closing():  # lost since the headers or the last window
                    raise ConnectionResetError("the connection closed mid-response")
                done = await self.loop.sendfile(transport, file, start, size)
                sent += done
                if done < size:  # the file ended
                    break
        return sent
