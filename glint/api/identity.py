"""Who is calling: a RequestContext built from the headers Keystone's auth_token sets.

In header mode glint trusts ``X-User-Id``, ``X-Project-Id`` (or ``X-Tenant-Id``) and
``X-Roles`` as a proxy or keystonemiddleware hands them over, so it must only be reachable
through one. Without ``X-Project-Id`` the embedded defaults from the settings apply, so a
newcomer's client works with any token; with ``default_project_id`` unset that is a 401. A
request that sends ``X-Roles`` or ``X-User-Id`` but no project is refused (400) rather than
served as the default identity: its sender meant to be someone else (``X-Roles: admin``).
Whether the caller is an admin is the policy's ``context_is_admin`` rule, checked the first
time something reads ``ctx.is_admin`` (the database's visibility filters: an admin sees every
project's images and tasks), so an operator who changes that rule changes it everywhere.
In keystone mode :mod:`glint.api.keystone` runs in front of this one: it sets the same headers
after validating the token, and the defaults never apply.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import cast

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from glint import errors, logcontext
from glint.api import errors as api_errors
from glint.context import RequestContext, new_request_id
from glint.policy import Policy
from glint.settings import Settings

PUBLIC_PATHS = frozenset({"/", "/versions", "/openapi.json"})
MAX_ID_LENGTH = 255  # owner and user_id columns


def from_headers(headers: Mapping[str, str], settings: Settings, request_id: str,
                 admin_rule: Callable[[RequestContext], bool] | None = None) -> RequestContext:
    """The caller's context; Unauthorized when there is neither identity nor a default.

    ``admin_rule`` decides ``is_admin`` (see :class:`RequestContext`).
    """
    if headers.get("x-identity-status", "Confirmed").lower() != "confirmed":
        raise errors.Unauthorized("The request you have made requires authentication.")
    project_id = headers.get("x-project-id") or headers.get("x-tenant-id")
    if project_id:
        keystone = settings.auth_mode == "keystone"
        return RequestContext(user_id=_id(headers.get("x-user-id"), "X-User-Id"),
                              project_id=_id(project_id, "X-Project-Id"),
                              roles=_roles(headers.get("x-roles", "")), request_id=request_id,
                              service_roles=_roles(headers.get("x-service-roles", "")),
                              auth_token=headers.get("x-auth-token") if keystone else None,
                              service_catalog=_catalog(headers) if keystone else (),
                              admin_rule=admin_rule)
    if settings.auth_mode == "keystone":  # a valid token without a project: domain or system
        raise errors.Forbidden("glint needs a project-scoped token: this one names no project.")
    sent = [name for name in ("X-Roles", "X-User-Id") if name.lower() in headers]
    if sent:
        raise errors.BadRequest(f"{' and '.join(sent)} without X-Project-Id: send the project "
                                "too (without identity headers a request acts as the default "
                                "identity; see docs/identity.md)")
    if settings.default_project_id is None:
        raise errors.Unauthorized("The request you have made requires authentication.")
    return RequestContext(user_id=settings.default_user_id,
                          project_id=settings.default_project_id,
                          roles=tuple(settings.default_roles), request_id=request_id,
                          admin_rule=admin_rule)


def _id(value: str | None, header: str) -> str | None:
    if value is not None and (len(value) > MAX_ID_LENGTH or not value.isprintable()):
        raise errors.BadRequest(f"Invalid {header} header: at most {MAX_ID_LENGTH} "
                                "printable characters")
    return value or None


def _catalog(headers: Mapping[str, str]) -> tuple[dict[str, object], ...]:
    """The token's service catalog, as ``auth_token`` sets it (``X-Service-Catalog``, JSON)."""
    try:
        catalog = json.loads(headers.get("x-service-catalog") or "[]")
    except ValueError:
        return ()
    return tuple(entry for entry in catalog if isinstance(entry, dict)) \
        if isinstance(catalog, list) else ()


def _roles(value: str) -> tuple[str, ...]:
    return tuple(role.strip().lower() for role in value.split(",") if role.strip())


def context(request: Request) -> RequestContext:
    """The context the middleware attached to ``request``."""
    return cast(RequestContext, request.scope["state"]["context"])


class IdentityMiddleware:
    """Attach ``scope["state"]["context"]``; the versions and OpenAPI documents need none."""

    def __init__(self, app: ASGIApp, settings: Settings, policy: Policy) -> None:
        self.app = app
        self.settings = settings
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in PUBLIC_PATHS:
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        try:
            request_id = state.get("request_id") or new_request_id()
            state["context"] = from_headers(Headers(scope=scope), self.settings, request_id,
                                            self.policy.is_admin)
        except errors.GlintError as exc:
            await api_errors.from_error(exc)(scope, receive, send)
            return
        with logcontext.bound(project_id=state["context"].project_id):
            await self.app(scope, receive, send)
