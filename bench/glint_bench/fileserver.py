"""A small HTTP/1.1 file server for loopback: one thread per connection, bodies by ``sendfile``.

The import source and the reference for the loopback limits. ``sendfile(2)`` moves the bytes
from the page cache to the socket in the kernel, so this server costs almost no CPU and the
figures it gives are loopback's, not Python's. It serves the files directly in its root
(GET and HEAD, ``Content-Length``, one request per connection) and nothing else. With the
query ``?unsized`` the response has no ``Content-Length``: the body ends when the connection
closes, as from a source that does not know its size.

Run as ``python -m glint_bench.fileserver ROOT``: it prints its port on stdout, then serves
until SIGTERM or SIGINT.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import signal
import socket
import socketserver
import sys
import types

MAX_HEAD = 16 * 1024


class Handler(socketserver.BaseRequestHandler):
    root: pathlib.Path

    def handle(self) -> None:
        sock: socket.socket = self.request
        head = _read_head(sock)
        if head is None:
            return
        method, _, target = head.partition(" ")
        name, _, query = target.split(" ", 1)[0].lstrip("/").partition("?")
        path = self.root / name
        if method not in ("GET", "HEAD"):
            sock.sendall(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n"
                         b"Connection: close\r\n\r\n")
            return
        if not name or "/" in name or name.startswith(".") or not path.is_file():
            sock.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n"
                         b"Connection: close\r\n\r\n")
            return
        with path.open("rb") as body:
            size = os.fstat(body.fileno()).st_size
            length = "" if query == "unsized" else f"Content-Length: {size}\r\n"
            sock.sendall(f"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                         f"{length}Connection: close\r\n\r\n".encode())
            if method == "GET":
                sock.sendfile(body)


def _read_head(sock: socket.socket) -> str | None:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk or len(data) > MAX_HEAD:
            return None
        data += chunk
    return data.split(b"\r\n", 1)[0].decode("latin-1")


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


def serve(root: pathlib.Path) -> None:
    handler = type("RootHandler", (Handler,), {"root": root})
    with Server(("127.0.0.1", 0), handler) as server:
        print(server.server_address[1], flush=True)

        def stop(_signum: int, _frame: types.FrameType | None) -> None:
            raise KeyboardInterrupt

        signal.signal(signal.SIGTERM, stop)
        with contextlib.suppress(KeyboardInterrupt):
            server.serve_forever(poll_interval=0.2)


if __name__ == "__main__":
    serve(pathlib.Path(sys.argv[1]).resolve())
