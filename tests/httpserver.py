"""A local HTTP server for tests: threaded, on 127.0.0.1, port 0 (no network beyond loopback).

Routes are registered per path::

    with LocalServer() as server:
        server.serve("/image", data)                  # with Content-Length
        server.serve("/chunked", data, chunked=True)  # Transfer-Encoding: chunked
        server.serve("/liar", data, content_length=len(data) + 10)  # claims more than it sends
        server.serve("/slow", data, delay=2.0)        # pauses before the second half
        server.status("/missing", 404)
        server.redirect("/old", "/image")             # relative or absolute Location
        url = server.url("/old")
        server.accept("/upload")                      # takes a PUT; the body lands in uploads
        server.accept("/full", status=507)            # reads a PUT's body, then answers 507

``requests`` records every request (method, path, headers) for assertions.
``LocalServer("127.0.0.2")`` or ``LocalServer("::1")`` listens on another loopback address
(the import-safety tests use them as targets that must never be reached).
"""

from __future__ import annotations

import dataclasses
import http.server
import socket
import threading
import time
from types import TracebackType
from typing import Any

LOOPBACK = "127.0.0.1"


@dataclasses.dataclass(frozen=True)
class Route:
    status: int = 200
    body: bytes = b""
    chunked: bool = False
    content_length: int | None = None  # what the header claims; None: the body's length
    delay: float = 0.0  # seconds to pause after sending the first half of the body
    headers: tuple[tuple[str, str], ...] = ()


@dataclasses.dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]


class LocalServer:
    def __init__(self, host: str = LOOPBACK) -> None:
        self.host = host
        self.routes: dict[str, Route] = {}
        self.requests: list[Request] = []
        self.put_statuses: dict[str, int] = {}
        self.uploads: dict[str, bytes] = {}
        self._server = (_Server6 if ":" in host else _Server)((host, 0), _Handler)
        self._server.owner = self
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self) -> LocalServer:
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def url(self, path: str, host: str | None = None) -> str:
        host = self.host if host is None else host
        return f"http://[{host}]:{self.port}{path}" if ":" in host else \
            f"http://{host}:{self.port}{path}"

    def serve(self, path: str, body: bytes, *, chunked: bool = False,
              content_length: int | None = None, delay: float = 0.0,
              headers: tuple[tuple[str, str], ...] = ()) -> str:
        self.routes[path] = Route(200, body, chunked, content_length, delay, headers)
        return self.url(path)

    def status(self, path: str, status: int, body: bytes = b"error\n") -> str:
        self.routes[path] = Route(status, body)
        return self.url(path)

    def redirect(self, path: str, location: str, status: int = 302) -> str:
        self.routes[path] = Route(status, b"", headers=(("Location", location),))
        return self.url(path)

    def accept(self, path: str, status: int = 201) -> str:
        """Take PUTs to ``path``: read the whole body, answer ``status``; 2xx keeps the body."""
        self.put_statuses[path] = status
        return self.url(path)


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
    return port


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    owner: LocalServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients that hang up early (tests of failures) are expected


class _Server6(_Server):
    address_family = socket.AF_INET6


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def do_GET(self) -> None:
        owner = self.server.owner
        owner.requests.append(Request("GET", self.path, dict(self.headers.items())))
        route = owner.routes.get(self.path.split("?", 1)[0])
        if route is None:
            route = Route(404, b"no such route\n")
        self.send_response(route.status)
        for name, value in route.headers:
            self.send_header(name, value)
        if route.chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            claimed = len(route.body) if route.content_length is None else route.content_length
            self.send_header("Content-Length", str(claimed))
            if claimed != len(route.body):
                self.close_connection = True
        self.end_headers()
        half = len(route.body) // 2
        self._send(route.body[:half], route.chunked)
        if route.delay:
            self.wfile.flush()
            time.sleep(route.delay)
        self._send(route.body[half:], route.chunked)
        if route.chunked:
            self.wfile.write(b"0\r\n\r\n")

    def do_PUT(self) -> None:
        owner = self.server.owner
        owner.requests.append(Request("PUT", self.path, dict(self.headers.items())))
        path = self.path.split("?", 1)[0]
        body = self._read_body()
        status = owner.put_statuses.get(path, 405)
        if 200 <= status < 300:
            owner.uploads[path] = body
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            parts = []
            while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                parts.append(self.rfile.read(size))
                self.rfile.readline()
            self.rfile.readline()  # the blank line after the last chunk
            return b"".join(parts)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _send(self, data: bytes, chunked: bool) -> None:
        step = 256 * 1024
        for start in range(0, len(data), step):
            piece = data[start:start + step]
            if chunked:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            else:
                self.wfile.write(piece)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def threaded(handler: type[http.server.BaseHTTPRequestHandler]) -> http.server.ThreadingHTTPServer:
    """``handler`` served on 127.0.0.1, port 0, from a daemon thread; ``shutdown`` and
    ``server_close`` it when done (:func:`stop`)."""
    httpd = http.server.ThreadingHTTPServer((LOOPBACK, 0), handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd


def stop(httpd: http.server.ThreadingHTTPServer) -> None:
    httpd.shutdown()
    httpd.server_close()
