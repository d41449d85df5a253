"""``GET /metrics`` and the HTTP metrics of every request (glint.metrics).

:class:`RequestMetricsMiddleware` counts each request and times it, labelled by the route
*template* the router matched (``/v2/images/{image_id}``), never the raw path, so the number of
series stays bounded whatever clients ask for. It reads the route from the ASGI scope once the
request is answered (Starlette's router leaves it there). :class:`MetricsMiddleware` answers
``GET /metrics`` before any token check, as the plain ``/healthcheck`` is answered: Prometheus
scrapes without a token; keep the port away from the public network (docs/operations.md).
"""

from __future__ import annotations

import time
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from glint import metrics
from glint.api import routing

PATH = "/metrics"
# Paths answered by middleware (no route): their own label. Anything else unrouted is a 404.
MIDDLEWARE_PATHS = frozenset({"/", "/healthcheck", PATH})
UNMATCHED = "unmatched"
# Methods by name; any other (a client's invention) is "other": labels stay bounded.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class MetricsMiddleware:
    """Answers ``GET /metrics`` itself; everything else passes."""

    def __init__(self, app: ASGIApp, exposition: metrics.Exposition) -> None:
        self.app = app
        self.exposition = exposition

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != PATH:
            await self.app(scope, receive, send)
            return
        if await routing.refused_unless_read(scope, receive, send):
            return
        body = await run_in_threadpool(self.exposition.render)
        await Response(body, media_type=metrics.CONTENT_TYPE)(scope, receive, send)


class RequestMetricsMiddleware:
    """``glint_http_requests_total`` and ``glint_http_request_duration_seconds``.

    The labelled children are kept in dicts: prometheus-client's ``labels()`` takes a lock and
    builds a tuple each call, which is most of the cost on this path.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._counters: dict[tuple[str, str, int], Any] = {}
        self._timers: dict[tuple[str, str], Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # an error that escapes every handler becomes a 500 outside this one

        async def send_noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_noting_status)
        finally:
            self._record(scope, status, time.perf_counter() - started)

    def _record(self, scope: Scope, status: int, seconds: float) -> None:
        method = scope["method"] if scope["method"] in METHODS else "other"
        route = _route(scope)
        counter = self._counters.get((method, route, status))
        if counter is None:
            counter = self._counters[method, route, status] = metrics.HTTP_REQUESTS.labels(
                method, route, str(status))
        timer = self._timers.get((method, route))
        if timer is None:
            timer = self._timers[method, route] = metrics.HTTP_DURATION.labels(method, route)
        counter.inc()
        timer.observe(seconds)


def _route(scope: Scope) -> str:
    route = scope.get("route")
    if route is not None:
        return str(getattr(route, "path", UNMATCHED))
    path = scope["path"]
    return path if path in MIDDLEWARE_PATHS else UNMATCHED
