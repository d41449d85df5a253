"""``create_app``: the Starlette application serving one :class:`glint.app.Glint`.

Middleware, outermost first: request id (every response carries it, and every log line of
the request), the HTTP metrics (each request counted and timed by route template), ``/metrics``
and the plain ``/healthcheck`` (both answered before any token check), URL version
negotiation (and the 300 versions document), in keystone mode the token check, identity (the
request context, whose ``is_admin`` the policy decides when first read). Errors become JSON through
the one table in :mod:`glint.api.errors`.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.routing import BaseRoute

from glint import errors
from glint.api import (
    cache,
    dashboard,
    health,
    image_actions,
    image_data,
    image_import,
    image_members,
    image_tags,
    images,
    info,
    metadefs,
    metrics,
    openapi,
    schemas,
    stores,
    tasks,
    versions,
)
from glint.api import errors as api_errors
from glint.api.identity import IdentityMiddleware
from glint.api.request_id import RequestIdMiddleware
from glint.app import Glint
from glint.settings import Settings

LOG = logging.getLogger(__name__)


def create_app(glint: Glint, *, manage_lifecycle: bool = True) -> Starlette:
    """The API app for ``glint``; with ``manage_lifecycle`` it starts and closes ``glint``."""
    middleware = [
        Middleware(RequestIdMiddleware),
        Middleware(metrics.RequestMetricsMiddleware),
        Middleware(metrics.MetricsMiddleware, exposition=glint.metrics),
        Middleware(health.HealthcheckMiddleware, health=glint.health),
        Middleware(versions.VersionNegotiationMiddleware, settings=glint.settings),
        *_authentication(glint.settings),
        Middleware(IdentityMiddleware, settings=glint.settings, policy=glint.policy),
    ]
    handlers = {errors.GlintError: api_errors.glint_error, HTTPException: api_errors.http_error,
                **dict.fromkeys(api_errors.DATABASE_ERRORS, api_errors.database_error),
                Exception: api_errors.unexpected}
    lifespan = _lifespan(glint) if manage_lifecycle else None
    app = Starlette(routes=routes(glint), middleware=middleware, exception_handlers=handlers,
                    lifespan=lifespan)
    # Glance answers 404 for a path with a trailing slash (``GET /v2/images/`` is the image
    # with an empty id); a redirect to the list would turn ``DELETE`` into a 405.
    app.router.redirect_slashes = False
    return app


def _authentication(settings: Settings) -> list[Middleware]:
    """keystonemiddleware's ``auth_token`` in keystone mode; header mode trusts the headers."""
    if settings.auth_mode != "keystone":
        return []
    from glint.api.keystone import KeystoneMiddleware  # keystone's libraries load only when used

    return [Middleware(KeystoneMiddleware, options=dict(settings.keystone_authtoken),
                       validations=settings.token_validations,
                       backlog=settings.token_validation_backlog,
                       invalid_token_cache_time=settings.invalid_token_cache_time)]


def routes(glint: Glint) -> list[BaseRoute]:
    return [
        *versions.routes(glint.settings),
        *openapi.routes(glint.settings, glint.registry),
        *schemas.routes(glint.registry, glint.settings),
        *tasks.routes(glint.tasks, glint.registry, glint.settings, inline_reads=glint.db.is_sqlite),
        *images.routes(glint.images, glint.tasks, glint.settings),
        *image_data.routes(glint.images, glint.uploads, glint.cache),
        *cache.routes(glint.cache, glint.images, glint.tasks),
        *image_tags.routes(glint.images),
        *image_actions.routes(glint.images),
        *image_members.routes(glint.members),
        *image_import.routes(glint.imports, glint.settings, glint.images.backends),
        *stores.routes(glint.locations),
        *info.routes(glint.images, glint.settings, glint.db),
        *metadefs.routes(glint.metadefs, glint.settings),
        *health.routes(glint.health),
        *dashboard.routes(glint.dashboard),
    ]


def _lifespan(glint: Glint) -> Callable[[Starlette], AbstractAsyncContextManager[None]]:
    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        await run_in_threadpool(glint.start)
        try:
            yield
        finally:
            await run_in_threadpool(glint.close)

    return lifespan
