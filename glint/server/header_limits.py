"""Limits on a request's headers, answered as Glance's server answers them, before any app work.

httptools, which parses glint's requests, takes header lines of any length (a 64 MiB token is
buffered whole) and any number of them. Glance's server (eventlet, with Glance's
``max_header_line``) refuses:

- a header line of :data:`MAX_LINE` bytes or more: 400 *Header Line Too Long*;
- headers of more than :data:`MAX_BYTES` bytes together: 400 *Headers Too Large*;
- more than :data:`MAX_COUNT` headers: 431 (Python's ``http.client`` limit, under eventlet).

:class:`HeaderLimitsProtocol` (part of the protocol ``glint serve`` runs) applies them to each
request as its head is parsed, and stops reading a head that grows past :data:`MAX_HEAD` bytes
without ending, so neither the app nor the token check ever sees such a request, in any
``auth_mode``. The answer closes the connection, as Glance's does; its body is glint's usual
JSON error.
"""

from __future__ import annotations

import dataclasses
import http
import json
from collections.abc import Iterable

from uvicorn._types import ASGI3Application
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

MAX_LINE = 16384  # Glance's max_header_line, counting "Name: value\r\n"
MAX_BYTES = 65536  # eventlet's MAX_TOTAL_HEADER_SIZE
MAX_COUNT = 100  # http.client's _MAXHEADERS
MAX_HEAD = MAX_BYTES + 8192  # a head (request line and headers) still unparsed at this size


@dataclasses.dataclass(frozen=True)
class Refusal:
    status: int
    message: str

    def response(self) -> bytes:
        """The whole HTTP response, closing the connection."""
        body = json.dumps({"error": {"code": self.status,
                                     "title": http.HTTPStatus(self.status).phrase,
                                     "message": self.message}}).encode()
        head = (f"HTTP/1.1 {self.status} {http.HTTPStatus(self.status).phrase}\r\n"
                "content-type: application/json\r\n"
                f"content-length: {len(body)}\r\nconnection: close\r\n\r\n")
        return head.encode("latin-1") + body


LINE_TOO_LONG = Refusal(400, f"Header Line Too Long: a header line is at most {MAX_LINE - 1} "
                             "bytes.")
TOO_LARGE = Refusal(400, f"Headers Too Large: a request's headers are at most {MAX_BYTES} "
                         "bytes together.")
TOO_MANY = Refusal(431, f"Too many headers: a request has at most {MAX_COUNT}.")


def refusal(headers: Iterable[tuple[bytes, bytes]]) -> Refusal | None:
    """Why a request with these headers is refused, in the order Glance's server reads them;
    None when it is not."""
    total = 0
    for count, (name, value) in enumerate(headers, 1):
        line = len(name) + len(value) + 4  # "Name: value\r\n"
        if line >= MAX_LINE:
            return LINE_TOO_LONG
        total += line
        if total > MAX_BYTES:
            return TOO_LARGE
        if count > MAX_COUNT:
            return TOO_MANY
    return None


class HeaderLimitsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the limits above."""

    _head: int | None = 0  # bytes of the head being received; None while a body is

    def data_received(self, data: bytes) -> None:
        if self._head is not None:
            self._head += len(data)  # exact while the head goes on past this chunk
        super().data_received(data)
        if self._head is not None and self._head > MAX_HEAD and not self.transport.is_closing():
            if self.cycle is None or self.cycle.response_complete:
                self._refuse(TOO_LARGE)
            else:  # a response is under way on this connection: no answer can follow it
                self.transport.close()

    def on_headers_complete(self) -> None:
        self._head = None
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._head = 0

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: ASGI3Application) -> None:
        refused = refusal(cycle.scope["headers"])
        if refused is not None:
            self._refuse(refused)
            return
        super()._start_asgi_task(cycle, app)

    def _refuse(self, refused: Refusal) -> None:
        self.logger.info("refused a request: %s", refused.message)
        self.transport.write(refused.response())
        self.transport.close()
