"""``x-openstack-request-id``: reused from the request or made up, and stamped on every response."""

from __future__ import annotations

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from glint import context, errors, logcontext
from glint.api import errors as api_errors

HEADER = api_errors.REQUEST_ID_HEADER
MAX_LENGTH = 64  # Glance's max_request_id_length; tasks record it in a 64-character column


def from_header(value: str | None) -> str:
    """The request id to use: the caller's (``req-`` prefixed) or a new one."""
    if not value:
        return context.new_request_id()
    request_id = value if value.startswith("req-") else f"req-{value}"
    if len(request_id) > MAX_LENGTH or not request_id.isprintable():
        raise errors.BadRequest(f"The {HEADER} header must be at most {MAX_LENGTH} printable "
                                "characters, 'req-' prefix included")
    return request_id


class RequestIdMiddleware:
    """Outermost glint middleware: every response below it carries the request id.

    The id is kept in ``scope["state"]["request_id"]`` for the identity middleware (it goes
    into the request context) and for the 500 handler, which runs outside this middleware.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            request_id = from_header(Headers(scope=scope).get(HEADER))
        except errors.BadRequest as exc:
            response = api_errors.from_error(exc)
            response.headers[HEADER] = context.new_request_id()
            await response(scope, receive, send)
            return
        scope.setdefault("state", {})["request_id"] = request_id

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = list(message.get("headers", []))
                MutableHeaders(scope=message)[HEADER] = request_id
            await send(message)

        with logcontext.bound(request_id=request_id):
            await self.app(scope, receive, send_with_id)
