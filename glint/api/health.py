"""``GET /healthcheck``: oslo.middleware's endpoint as Glance serves it, on glint's checks.

A load balancer's probe gets plain text without authenticating: ``OK`` (200), or 503 with one
line per failed check (or ``DISABLED BY FILE``). :class:`HealthcheckMiddleware` answers those
before the token check. With ``Accept: application/json`` the request goes on through the
identity middleware to :func:`routes`, which answers admins (the ``healthcheck_detail`` policy
decision is simply ``is_admin``) with every check, its detail and how long it took.
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from glint import errors
from glint.api import routing
from glint.api.identity import context as request_context
from glint.health import Health

PATH = "/healthcheck"


def _wants_json(scope: Scope) -> bool:
    accept = dict(scope.get("headers") or []).get(b"accept", b"")
    return b"application/json" in accept


class HealthcheckMiddleware:
    """Answers the plain ``/healthcheck`` itself; everything else passes."""

    def __init__(self, app: ASGIApp, health: Health) -> None:
        self.app = app
        self.health = health

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != PATH or _wants_json(scope):
            await self.app(scope, receive, send)
            return
        if await routing.refused_unless_read(scope, receive, send):
            return
        report = await run_in_threadpool(self.health.report)
        response = PlainTextResponse(report.text(), 200 if report.ok else 503)
        await response(scope, receive, send)


def routes(health: Health) -> list[BaseRoute]:
    def detail(request: Request) -> Response:
        if not request_context(request).is_admin:
            raise errors.Forbidden("The detailed health check is for admins.")
        report = health.report()
        return JSONResponse(report.as_json(), 200 if report.ok else 503)

    return [routing.resource(PATH, {"GET": detail})]
