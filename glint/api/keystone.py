"""Keystone mode: tokens validated by keystonemiddleware's ``auth_token``.

``auth_token`` is WSGI middleware; glint is an ASGI application whose bodies stream, so rather
than wrapping the app in a WSGI bridge, :class:`KeystoneMiddleware` hands ``auth_token`` a
body-less copy of each request's headers and runs its ``process_request`` in a worker thread
(it may call Keystone, and caches what it learns). What comes back is the request with the
identity headers ``auth_token`` sets (``X-Identity-Status``, ``X-User-Id``, ``X-Project-Id``,
``X-Roles``, the ``X-Service-*`` set for a service token, ...). Those replace whatever the client
sent under the same names, so a client cannot speak for someone else, and
:class:`glint.api.identity.IdentityMiddleware` reads them as in header mode.

A request without a valid token gets 401 with ``WWW-Authenticate: Keystone uri="..."`` from
``auth_token`` itself. The options are ``auth_token``'s own (``www_authenticate_uri``,
``auth_url``, ``auth_type``, ``username``, ``password``, ``project_name``,
``memcached_servers``, ``token_cache_time``, ...), given as the ``[keystone_authtoken]`` table
of glint's settings.
"""

from __future__ import annotations

import logging
from typing import Any

import anyio.to_thread
import webob.exc
from keystoneauth1 import loading
from keystonemiddleware import auth_token
from keystonemiddleware.auth_token import _request
from oslo_config import cfg
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from glint import errors
from glint.api.identity import PUBLIC_PATHS

LOG = logging.getLogger(__name__)
GROUP = "keystone_authtoken"


def _identity_header_names() -> frozenset[str]:
    """Every header ``auth_token`` sets or strips, lower-cased."""
    req = _request._AuthTokenRequest
    names = [template % prefix
             for prefix in (req._USER_HEADER_PREFIX, req._SERVICE_HEADER_PREFIX)
             for template in (*req._HEADER_TEMPLATE, req._ROLES_TEMPLATE)]
    names += [req._USER_STATUS_HEADER, req._SERVICE_STATUS_HEADER, req._ADMIN_PROJECT_HEADER,
              req._SYSTEM_SCOPE_HEADER, req._SERVICE_CATALOG_HEADER,
              *req._DEPRECATED_HEADER_MAP]
    return frozenset(name.lower() for name in names)


IDENTITY_HEADERS = _identity_header_names()


def build_auth_protocol(options: dict[str, Any]) -> auth_token.AuthProtocol:
    """An ``AuthProtocol`` configured from ``options`` only (not the global oslo.config CONF)."""
    if not options.get("www_authenticate_uri") or not options.get("auth_url"):
        raise errors.ConfigurationError(
            "auth_mode = keystone needs [keystone_authtoken] www_authenticate_uri (where "
            "clients get tokens) and auth_url, auth_type, username, password, project_name "
            "(the service user glint validates tokens with)")
    conf = cfg.ConfigOpts()
    conf([], project="glint", default_config_files=[], default_config_dirs=[])
    for group, opts in auth_token.list_opts():
        conf.register_opts(opts, group=group)
    plugin = str(options.get("auth_type", "password"))
    plugin_opts = loading.get_auth_plugin_conf_options(plugin)
    conf.register_opts(plugin_opts, group=GROUP)
    known = {opt.dest for _, opts in auth_token.list_opts() for opt in opts}
    known |= {opt.dest for opt in plugin_opts}
    unknown = sorted(set(options) - known)
    if unknown:
        raise errors.ConfigurationError(
            f"[keystone_authtoken] has unknown options: {', '.join(unknown)}")
    conf.set_override("auth_type", plugin, group=GROUP)
    for name, value in options.items():
        conf.set_override(name, value, group=GROUP)
    # auth_token's own refusal already is the 401 glint would give; no downstream decision.
    conf.set_override("delay_auth_decision", False, group=GROUP)
    return auth_token.AuthProtocol(_unreachable_app, {"oslo_config_config": conf})


def _unreachable_app(environ: Any, start_response: Any) -> Any:  # pragma: no cover
    raise AssertionError("auth_token only checks requests here; glint answers them")


class KeystoneMiddleware:
    """Validate the token of every request but the versions and OpenAPI documents."""

    def __init__(self, app: ASGIApp, options: dict[str, Any]) -> None:
        self.app = app
        self.auth = build_auth_protocol(dict(options))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in PUBLIC_PATHS:
            await self.app(scope, receive, send)
            return
        checked = await anyio.to_thread.run_sync(self._check, scope)
        if isinstance(checked, webob.exc.HTTPException):
            await _send_webob(checked, send)
            return
        await self.app({**scope, "headers": checked}, receive, send)

    def _check(self, scope: Scope) -> list[tuple[bytes, bytes]] | webob.exc.HTTPException:
        """The request's headers with the identity ``auth_token`` found; or its refusal."""
        headers = Headers(scope=scope)
        environ = {f"HTTP_{name.upper().replace('-', '_')}": value
                   for name, value in headers.items()
                   if name not in ("content-type", "content-length")}
        request = _request._AuthTokenRequest.blank(scope["path"], environ=environ,
                                                   method=scope["method"])
        try:
            response = self.auth.process_request(request)
        except webob.exc.HTTPException as exc:
            return exc
        if response is not None:  # pragma: no cover - AuthProtocol raises instead
            return webob.exc.HTTPUnauthorized()
        kept = [(name, value) for name, value in scope["headers"]
                if name.decode("latin-1").lower() not in IDENTITY_HEADERS]
        found = [(name.lower().encode("latin-1"), value.encode("latin-1"))
                 for name, value in request.headers.items()
                 if name.lower() in IDENTITY_HEADERS and value is not None]
        return kept + found


async def _send_webob(exc: webob.exc.HTTPException, send: Send) -> None:
    body = exc.body if isinstance(exc.body, bytes) else b""
    headers = [(name.lower().encode("latin-1"), value.encode("latin-1"))
               for name, value in exc.headers.items() if name.lower() != "content-length"]
    headers.append((b"content-length", str(len(body)).encode()))
    start: Message = {"type": "http.response.start", "status": exc.status_int,
                      "headers": headers}
    await send(start)
    await send({"type": "http.response.body", "body": body})
