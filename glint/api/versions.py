"""The versions document and URL version negotiation (``glance/api/versions.py``).

``GET /versions`` answers 200, ``GET /`` and any unknown version prefix 300, as Glance does.
glanceclient's ``image-tasks`` asks for v2.12, so that is the current version.
"""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from glint.api.routing import resource
from glint.settings import Settings

CURRENT = 12
MULTI_STORE = 13  # with enabled_backends, as Glance: 2.13 (stores detail) too
CACHE = 14  # with the image cache on, as Glance: 2.14, the /v2/cache API (glanceclient asks)
MINORS = range(CURRENT, -1, -1)
ACCEPTED = frozenset({"v2"} | {f"v2.{minor}" for minor in MINORS})


def minors(settings: Settings) -> list[int]:
    """The v2 minor versions this configuration serves, newest (CURRENT) first."""
    extra = ([MULTI_STORE] if settings.enabled_backends else []) + (
        [CACHE] if settings.effective_image_cache_enabled else [])
    return sorted([*MINORS, *extra], reverse=True)


def current(settings: Settings) -> int:
    return minors(settings)[0]


def accepted(settings: Settings) -> frozenset[str]:
    return ACCEPTED | {f"v2.{minor}" for minor in minors(settings)}


_VERSION_PREFIX = re.compile(r"^/(v\d+(?:\.\d+)?)(/.*)?$")


def document(base_url: str, served: list[int] | None = None) -> dict[str, Any]:
    """The versions document: ``served`` minors, newest first (default: 2.12 down to 2.0)."""
    served = list(MINORS) if served is None else served
    href = base_url.rstrip("/") + "/v2/"
    return {"versions": [
        {"id": f"v2.{minor}", "status": "CURRENT" if minor == served[0] else "SUPPORTED",
         "links": [{"rel": "self", "href": href}]}
        for minor in served
    ]}


class VersionsApi:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def response(self, request: Request, status_code: int) -> Response:
        base = self.settings.public_endpoint or str(request.base_url)
        return JSONResponse(document(base, minors(self.settings)), status_code=status_code)

    async def choices(self, request: Request) -> Response:
        return self.response(request, 300)

    async def index(self, request: Request) -> Response:
        return self.response(request, 200)


def routes(settings: Settings) -> list[BaseRoute]:
    api = VersionsApi(settings)
    return [resource("/", {"GET": api.choices}), resource("/versions", {"GET": api.index})]


class VersionNegotiationMiddleware:
    """``/v2.N/...`` is served as ``/v2/...``; ``/v2`` itself and unknown versions get 300."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.api = VersionsApi(settings)
        self.accepted = accepted(settings)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        match = _VERSION_PREFIX.match(scope["path"]) if scope["type"] == "http" else None
        if match is None:
            await self.app(scope, receive, send)
            return
        version, rest = match.group(1), match.group(2) or ""
        if version not in self.accepted or rest in ("", "/"):
            await self.api.response(Request(scope), 300)(scope, receive, send)
            return
        if version != "v2":
            scope["path"] = "/v2" + rest
        await self.app(scope, receive, send)
