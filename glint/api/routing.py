"""Resources: one path, a handler per method, 405 with ``Allow`` for the rest (as Glance does)."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Collection, Mapping
from typing import cast

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from glint import errors

Handler = Callable[[Request], Response | Awaitable[Response]]


class Resource:
    """An ASGI app serving one path.

    Sync handlers run in the thread pool (they do blocking database and store work), except
    for the methods named ``inline``: quick reads of a local database (SQLite), which run on
    the event loop. There a hop to a thread costs more CPU than the read itself and buys no
    concurrency, since the read holds the GIL for most of its time anyway; a database across a
    network (PostgreSQL) waits on round trips and keeps the hop. Async handlers are for the
    ones that must read the request body first.
    """

    def __init__(self, handlers: Mapping[str, Handler], allow: str | None = None,
                 inline: Collection[str] = ()) -> None:
        self.handlers = dict(handlers)
        self.allow = allow or ", ".join(self.handlers)
        self.inline = frozenset(inline)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        handler = self.handlers.get(request.method)
        if handler is None:
            raise errors.MethodNotAllowed(
                f"The method {request.method} is not allowed for this resource.", allow=self.allow)
        if request.method in self.inline:
            response = handler(request)
        else:
            response = await _call(handler, request)
        await cast(Response, response)(scope, receive, send)


async def _call(handler: Handler, request: Request) -> Response:
    if inspect.iscoroutinefunction(handler):
        return cast(Response, await handler(request))
    return cast(Response, await run_in_threadpool(handler, request))


def resource(path: str, handlers: Mapping[str, Handler],
             allow: str | None = None, inline: Collection[str] = ()) -> Route:
    """A route for ``path`` whose unlisted methods get 405 with ``Allow: <listed methods>``.

    ``inline`` names the methods whose (sync) handlers run on the event loop: see Resource.
    """
    return Route(path, Resource(handlers, allow, inline))


async def refused_unless_read(scope: Scope, receive: Receive, send: Send) -> bool:
    """For a middleware answering one path itself (``/healthcheck``, ``/metrics``): a method
    other than GET and HEAD gets a plain 405 with ``Allow: GET, HEAD``; True when it did."""
    if scope["method"] in ("GET", "HEAD"):
        return False
    await PlainTextResponse("Method Not Allowed", 405,
                            headers={"Allow": "GET, HEAD"})(scope, receive, send)
    return True
