"""Minimal HTTP/1.1 clients for loopback, cheap enough that the server is what gets measured.

Python HTTP clients spend more CPU per byte (and per request) than a 2-core machine can spare
beside the server under test. These send bodies with ``sendfile(2)``, read bodies into one
reused buffer, and keep connections alive for API load. They understand exactly what glint
and :mod:`glint_bench.fileserver` answer: ``Content-Length`` bodies, no chunking.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import pathlib
import socket
import time
from collections.abc import Mapping
from typing import Any

BUFFER = 1024 * 1024
TIMEOUT = 120.0


@dataclasses.dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes  # empty for bodies read to /dev/null
    nbytes: int
    md5: str = ""  # of the body, when asked for


def _head(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("connection closed before the response head")
        data += chunk
    head, rest = data.split(b"\r\n\r\n", 1)
    return (*_parse_head(head), rest)


def _parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(lines[0].split(" ", 2)[1]), headers


def _body(sock: socket.socket, rest: bytes, length: int | None, keep: bool,
          digest: Any = None) -> tuple[bytes, int]:
    """Read the body after ``rest``; keep it (small bodies) or discard it into one buffer,
    fed to ``digest`` (a hashlib object) if given."""
    parts = [rest] if keep else []
    if digest is not None:
        digest.update(rest)
    count = len(rest)
    buffer = bytearray(BUFFER)
    view = memoryview(buffer)
    while length is None or count < length:
        want = BUFFER if length is None else min(BUFFER, length - count)
        got = sock.recv_into(view, want)
        if not got:
            break
        count += got
        if digest is not None:
            digest.update(view[:got])
        if keep:
            parts.append(bytes(view[:got]))
    return b"".join(parts), count


def get(port: int, path: str, *, keep_body: bool = False, md5: bool = False) -> Reply:
    """``GET path`` on 127.0.0.1:``port``; the body is discarded unless ``keep_body``, its md5
    taken with ``md5`` (which costs the client CPU: not for timed reads)."""
    digest = hashlib.md5(usedforsecurity=False) if md5 else None
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     f"Connection: close\r\n\r\n".encode())
        status, headers, rest = _head(sock)
        length = int(headers["content-length"]) if "content-length" in headers else None
        body, count = _body(sock, rest, length, keep_body, digest)
    return Reply(status, headers, body, count, digest.hexdigest() if digest else "")


def put_file(port: int, path: str, source: pathlib.Path, headers: dict[str, str]) -> Reply:
    """``PUT path`` with ``source`` as the body, sent by ``sendfile(2)``; the reply is kept."""
    size = source.stat().st_size
    lines = [f"PUT {path} HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {size}",
             "Connection: close", *(f"{k}: {v}" for k, v in headers.items())]
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        # The server may answer early (an error) and close: then read what it said.
        with source.open("rb") as body, contextlib.suppress(BrokenPipeError,
                                                             ConnectionResetError):
            sock.sendfile(body)
        status, reply_headers, rest = _head(sock)
        length = int(reply_headers.get("content-length", "0"))
        data, count = _body(sock, rest, length, True)
    return Reply(status, reply_headers, data, count)


class Connection:
    """One keep-alive connection for API load: a request at a time, the body kept."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    @classmethod
    async def open(cls, port: int) -> Connection:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def request(self, method: str, path: str, body: bytes = b"",
                      headers: Mapping[str, str] | None = None) -> tuple[int, bytes, float]:
        """Send one request; return its status, body and duration in seconds."""
        head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        if body or method in ("POST", "PUT", "PATCH"):
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        head += "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
        start = time.perf_counter()
        self._writer.write(head.encode() + b"\r\n" + body)
        raw = await self._reader.readuntil(b"\r\n\r\n")
        status, headers = _parse_head(raw[:-4])
        data = await self._reader.readexactly(int(headers.get("content-length", "0")))
        return status, data, time.perf_counter() - start

    async def close(self) -> None:
        self._writer.close()
        with contextlib.suppress(ConnectionError):
            await self._writer.wait_closed()
