"""Resources: one path, a handler per method, 405 with ``Allow`` for the rest (as Glance does)."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping
from typing import cast

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from glint import errors

Handler = Callable[[Request], Response | Awaitable[Response]]


class Resource:
    """An ASGI app serving one path.

    Sync handlers run in the thread pool (they do blocking database and store work); async
    handlers are for the ones that must read the request body first.
    """

    def __init__(self, handlers: Mapping[str, Handler],
                 allow: str | None = None) -> None:
        self.handlers = dict(handlers)
        self.allow = allow or ", ".join(self.handlers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        handler = self.handlers.get(request.method)
        if handler is None:
            raise errors.MethodNotAllowed(
                f"The method {request.method} is not allowed for this resource.", allow=self.allow)
        response = await _call(handler, request)
        await response(scope, receive, send)


async def _call(handler: Handler, request: Request) -> Response:
    if inspect.iscoroutinefunction(handler):
        return cast(Response, await handler(request))
    return cast(Response, await run_in_threadpool(handler, request))


def resource(path: str, handlers: Mapping[str, Handler],
             allow: str | None = None) -> Route:
    """A route for ``path`` whose unlisted methods get 405 with ``Allow: <listed methods>``."""
    return Route(path, Resource(handlers, allow))
