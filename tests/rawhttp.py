"""Requests written byte for byte, for heads no HTTP client library would send (huge, many)."""

from __future__ import annotations

import dataclasses
import select
import socket

CHUNK = 64 * 1024


@dataclasses.dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    sent: int  # bytes of the request written before the answer came


def head(path: str, headers: list[tuple[str, str]], method: str = "GET") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1",
             *(f"{name}: {value}" for name, value in headers)]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def exchange(port: int, request: bytes, timeout: float = 30, chunk: int = CHUNK) -> Answer:
    """Write ``request`` ``chunk`` bytes at a time, stopping early when the server answers;
    read one response (a Content-Length body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sent = 0
        while sent < len(request) and not select.select([sock], [], [], 0)[0]:
            try:
                sent += sock.send(request[sent:sent + chunk])
            except (BrokenPipeError, ConnectionResetError):
                break
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"closed before a response head: {data!r}")
            data += chunk
        raw_head, body = data.split(b"\r\n\r\n", 1)
        lines = raw_head.decode("latin-1").split("\r\n")
        headers = {name.strip().lower(): value.strip()
                   for name, _, value in (line.partition(":") for line in lines[1:])}
        while len(body) < int(headers.get("content-length", "0")):
            chunk = sock.recv(65536)
            if not chunk:
                break
            body += chunk
        return Answer(int(lines[0].split()[1]), headers, body, sent)
