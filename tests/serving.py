"""Serving an ASGI app with the real uvicorn server on loopback, in a thread, for tests."""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
from collections.abc import Iterator
from typing import Any

import uvicorn

from glint.server.sendfile import SendfileProtocol


@contextlib.contextmanager
def serving(asgi_app: Any, protocol: Any = SendfileProtocol) -> Iterator[int]:
    """Serve ``asgi_app`` with uvicorn on 127.0.0.1; yield the port."""
    with uvicorn_on(socket.create_server(("127.0.0.1", 0)), asgi_app, protocol) as server:
        yield server.servers[0].sockets[0].getsockname()[1]


@contextlib.contextmanager
def uvicorn_on(listener: socket.socket, asgi_app: Any,
               protocol: Any = SendfileProtocol) -> Iterator[uvicorn.Server]:
    """Serve ``asgi_app`` with uvicorn on ``listener`` (bound, closed afterwards)."""
    config = uvicorn.Config(asgi_app, http=protocol, loop="asyncio", lifespan="off",
                            log_config=None)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]})
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
            time.sleep(0.01)
        yield server
    finally:
        server.should_exit = True
        thread.join(10)
        listener.close()


def abandon_download(port: int, image_id: str, headers: dict[str, str]) -> None:
    """Start downloading ``image_id`` and reset the connection once some bytes arrived (a
    reset, not a close: the server's next write fails at once)."""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        sock.sendall(f"GET /v2/images/{image_id}/file HTTP/1.1\r\nHost: x\r\n{head}\r\n"
                     .encode())
        assert sock.recv(256 * 1024)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
