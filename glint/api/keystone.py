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

Validating a token glint has not seen takes a Keystone round trip, and must not hold up requests
whose tokens are known (:mod:`glint.api.token_checks`). So a request's token is first looked up
in ``auth_token``'s cache alone (on the event loop when the cache is in this process; with
memcached, in a thread); only a token that is not there is validated with Keystone, in one of
the validation slots, and one Keystone refuses is refused again for a while without asking.
With no ``memcached_servers``, the cache is glint's own in-process one (:class:`MemoryCache`),
in place of ``auth_token``'s deprecated one. Keystone calls time out after
:data:`KEYSTONE_TIMEOUT` seconds unless ``http_connect_timeout`` says otherwise.

A request carries one token: a second ``X-Auth-Token``, or the same name spelled otherwise
(``X_Auth_Token``, ``X-Storage-Token``, which ``auth_token`` also reads), is refused with 400
before any token work, and the token passed on (to ``glance-download``, say) is exactly the
one validated.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import logging
from collections.abc import Iterable
from typing import Any, TypeAlias

import anyio.to_thread
import webob.exc
from keystoneauth1 import loading
from keystonemiddleware import auth_token
from keystonemiddleware.auth_token import _request
from oslo_config import cfg
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from glint import errors
from glint.api import errors as api_errors
from glint.api import token_checks
from glint.api.identity import PUBLIC_PATHS

LOG = logging.getLogger(__name__)
GROUP = "keystone_authtoken"
# Seconds a call to Keystone may take (keystoneauth's timeout; auth_token's default is none).
KEYSTONE_TIMEOUT = 10
# The request environ key glint's in-process token cache is handed to auth_token under.
CACHE_KEY = "glint.token_cache"
# Header names auth_token reads the user's token from, and the service token's; a name is
# compared with "_" as "-", since both spellings reach auth_token as the same WSGI variable.
USER_TOKEN_HEADERS = frozenset({"x-auth-token", "x-storage-token"})
SERVICE_TOKEN_HEADERS = frozenset({"x-service-token"})
# A request's (user token, service token), and what its check gives: the request's headers
# with the identity the token carries, or auth_token's refusal.
Tokens: TypeAlias = tuple[str | None, str | None]
Checked: TypeAlias = "list[tuple[bytes, bytes]] | webob.exc.HTTPException"
# Set while a request's token may only be looked up in the cache (see _AuthProtocol).
_CACHE_ONLY: contextvars.ContextVar[bool] = contextvars.ContextVar("glint_token_cache_only",
                                                                   default=False)


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


def _canonical(name: bytes | str) -> str:
    text = name.decode("latin-1") if isinstance(name, bytes) else name
    return text.lower().replace("_", "-")


def sole_tokens(headers: Iterable[tuple[bytes, bytes]]) -> Tokens:
    """The request's user token and service token; BadRequest when it carries more than one of
    either, whatever the spelling of their names."""
    users, services = [], []
    for name, value in headers:
        canonical = _canonical(name)
        if canonical in USER_TOKEN_HEADERS:
            users.append(value.decode("latin-1").strip())
        elif canonical in SERVICE_TOKEN_HEADERS:
            services.append(value.decode("latin-1").strip())
    if len(users) > 1 or len(services) > 1:
        raise errors.BadRequest("A request may carry one X-Auth-Token header (and one "
                                "X-Service-Token): this one has more.")
    return (users[0] if users else None), (services[0] if services else None)


class _NotCached(Exception):
    """The token is not in the cache: only Keystone can tell whether it is valid."""


class _AuthProtocol(auth_token.AuthProtocol):  # type: ignore[misc]
    """``auth_token`` that remembers refused tokens and can be held to its cache."""

    refused: token_checks.RefusedTokens

    def fetch_token(self, token: str, **kwargs: Any) -> Any:
        if token in self.refused:
            raise auth_token.InvalidToken("Keystone refused this token lately")
        if _CACHE_ONLY.get():
            cached = self._token_cache.get(token)
            if not cached:
                raise _NotCached
            return cached[0] if len(cached) == 2 else cached  # (as AuthProtocol reads it)
        try:
            return super().fetch_token(token, **kwargs)
        except auth_token.InvalidToken:
            self.refused.add(token)
            raise


def build_auth_protocol(options: dict[str, Any],
                        refused: token_checks.RefusedTokens | None = None) -> _AuthProtocol:
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
    conf.set_override("http_connect_timeout", KEYSTONE_TIMEOUT, group=GROUP)
    if local_cache(options):
        conf.set_override("cache", CACHE_KEY, group=GROUP)
    for name, value in options.items():
        conf.set_override(name, value, group=GROUP)
    # auth_token's own refusal already is the 401 glint would give; no downstream decision.
    conf.set_override("delay_auth_decision", False, group=GROUP)
    protocol = _AuthProtocol(_unreachable_app, {"oslo_config_config": conf})
    protocol.refused = refused if refused is not None else token_checks.RefusedTokens(0)
    return protocol


def local_cache(options: dict[str, Any]) -> bool:
    """Whether tokens are cached in this process (no memcached, no cache of the caller's)."""
    return not options.get("memcached_servers") and not options.get("cache")


def _unreachable_app(environ: Any, start_response: Any) -> Any:  # pragma: no cover
    raise AssertionError("auth_token only checks requests here; glint answers them")


class KeystoneMiddleware:
    """Validate the token of every request but the versions and OpenAPI documents."""

    def __init__(self, app: ASGIApp, options: dict[str, Any], validations: int = 16,
                 backlog: int = 64, invalid_token_cache_time: float = 30.0) -> None:
        self.app = app
        self.refused = token_checks.RefusedTokens(invalid_token_cache_time)
        self.auth = build_auth_protocol(dict(options), self.refused)
        self.slots = token_checks.ValidationSlots(validations, backlog)
        self.cache = token_checks.MemoryCache() if local_cache(options) else None
        # (user token, service token) → set once Keystone's answer about them is cached.
        self._validating: dict[Tokens, anyio.Event] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in PUBLIC_PATHS:
            await self.app(scope, receive, send)
            return
        try:
            checked = await self._checked(scope)
        except errors.GlintError as exc:
            await api_errors.from_error(exc)(scope, receive, send)
            return
        if isinstance(checked, webob.exc.HTTPException):
            await _send_webob(checked, send)
            return
        # In place, not a copy: the router's match (``scope["route"]``) must reach the HTTP
        # metrics middleware outside this one.
        scope["headers"] = checked
        await self.app(scope, receive, send)

    async def _checked(self, scope: Scope) -> Checked:
        tokens = sole_tokens(scope["headers"])
        try:
            return await self._cached(scope)
        except _NotCached:
            pass
        under_way = self._validating.get(tokens)
        if under_way is not None:  # the same token, sent again before Keystone answered
            await under_way.wait()
            with contextlib.suppress(_NotCached):
                return await self._cached(scope)
        return await self._validate(scope, tokens)

    async def _cached(self, scope: Scope) -> Checked:
        """The check with what is cached (refused tokens too); _NotCached for the rest."""
        if self.cache is not None:  # in this process: nothing to wait for, no thread needed
            return self._check(scope, cache_only=True)
        return await anyio.to_thread.run_sync(self._check, scope, True)

    async def _validate(self, scope: Scope, tokens: Tokens) -> Checked:
        """The check with Keystone, in a validation slot; requests with the same tokens wait
        for its answer rather than take slots of their own."""
        done = anyio.Event()
        self._validating.setdefault(tokens, done)
        try:
            return await self.slots.run(functools.partial(self._check, scope, False))
        finally:
            if self._validating.get(tokens) is done:
                del self._validating[tokens]
            done.set()

    def _check(self, scope: Scope, cache_only: bool) -> Checked:
        """The request's headers with the identity ``auth_token`` found; or its refusal.

        With ``cache_only``, a token not in the cache raises _NotCached instead of going to
        Keystone.
        """
        headers = Headers(scope=scope)
        environ: dict[str, Any] = {f"HTTP_{name.upper().replace('-', '_')}": value
                                   for name, value in headers.items()
                                   if name not in ("content-type", "content-length")}
        environ[CACHE_KEY] = self.cache
        request = _request._AuthTokenRequest.blank(scope["path"], environ=environ,
                                                   method=scope["method"])
        reset = _CACHE_ONLY.set(cache_only)
        try:
            self.auth.process_request(request)
        except webob.exc.HTTPException as exc:
            return exc
        finally:
            _CACHE_ONLY.reset(reset)
        replaced = IDENTITY_HEADERS | USER_TOKEN_HEADERS
        kept = [(name, value) for name, value in scope["headers"]
                if _canonical(name) not in replaced]
        found = [(name.lower().encode("latin-1"), value.encode("latin-1"))
                 for name, value in request.headers.items()
                 if name.lower() in IDENTITY_HEADERS and value is not None]
        # The token passed on is the one validated, under the one name glint reads.
        return [*kept, *found, (b"x-auth-token", request.user_token.strip().encode("latin-1"))]


async def _send_webob(exc: webob.exc.HTTPException, send: Send) -> None:
    body = exc.body if isinstance(exc.body, bytes) else b""
    headers = [(name.lower().encode("latin-1"), value.encode("latin-1"))
               for name, value in exc.headers.items() if name.lower() != "content-length"]
    headers.append((b"content-length", str(len(body)).encode()))
    start: Message = {"type": "http.response.start", "status": exc.status_int,
                      "headers": headers}
    await send(start)
    await send({"type": "http.response.body", "body": body})
