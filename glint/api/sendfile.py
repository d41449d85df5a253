"""Response bodies sent from a file by ``sendfile(2)``: the kernel copies them to the socket.

:class:`SendfileResponse` hands an open file, an offset and a count to the server as the ASGI
extension ``http.response.zerocopysend`` (glint's downloads, whole or one byte range); the
server that takes it is :mod:`glint.server.sendfile` (``glint serve``'s protocol). Only use it
when the server offers the extension (:func:`offered`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import BinaryIO

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

ZEROCOPYSEND = "http.response.zerocopysend"
PATHSEND = "http.response.pathsend"


def offered(scope: Scope) -> bool:
    """Whether the server takes ``http.response.zerocopysend`` for this request."""
    return ZEROCOPYSEND in scope.get("extensions", {})


class SendfileResponse(Response):
    """``count`` bytes of ``file`` from ``offset``, sent by the server (``zerocopysend``).

    Only for servers that offer the extension (:func:`offered`). The response owns ``file``
    and closes it once sent, or once the send failed.
    """

    def __init__(self, file: BinaryIO, offset: int, count: int, status_code: int = 200,
                 headers: Mapping[str, str] | None = None, media_type: str | None = None) -> None:
        self.file, self.offset, self.count = file, offset, count
        super().__init__(status_code=status_code, headers=headers, media_type=media_type)
        self.headers["content-length"] = str(count)  # Response would say 0, having no body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        with self.file:
            await send({"type": "http.response.start", "status": self.status_code,
                        "headers": self.raw_headers})
            await send({"type": ZEROCOPYSEND, "file": self.file, "offset": self.offset,
                        "count": self.count})
        if self.background is not None:
            await self.background()
