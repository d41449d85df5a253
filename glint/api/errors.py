"""The one table from glint errors to HTTP responses, and the JSON error body.

Bodies are ``{"error": {"code", "title", "message"}}``: glanceclient's ``exc.from_response``
reads ``message`` from each top-level value, so the nesting is what makes its messages readable.
"""

from __future__ import annotations

import http
import logging

import sqlalchemy as sa
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from glint import errors

LOG = logging.getLogger(__name__)
REQUEST_ID_HEADER = "x-openstack-request-id"
SERVER_ERROR = ("The server has either erred or is incapable of performing the requested "
                "operation.")
DATABASE_UNAVAILABLE = "The database is unavailable; try again later."
# SQLAlchemy errors that mean the database cannot be reached (refused, dropped, pool exhausted):
# answered as errors.ServiceUnavailable (503), not as unexpected (500).
DATABASE_ERRORS: tuple[type[Exception], ...] = (sa.exc.DBAPIError, sa.exc.TimeoutError)

STATUS: dict[type[errors.GlintError], int] = {
    errors.BadRequest: 400,
    errors.Unauthorized: 401,
    errors.Forbidden: 403,
    errors.NotFound: 404,
    errors.MethodNotAllowed: 405,
    errors.Conflict: 409,
    errors.Gone: 410,
    errors.TooLarge: 413,
    errors.StoreFull: 413,
    errors.UnsupportedMediaType: 415,
    errors.ImageRefused: 415,
    errors.RangeNotSatisfiable: 416,
    errors.ServiceUnavailable: 503,
    errors.StoreUnwritable: 503,
}
# Messages for Starlette's own errors, which only carry the reason phrase.
_DEFAULT_MESSAGES = {
    404: "The resource could not be found.",
    405: "The method is not allowed on this resource.",
}


def status_of(exc: errors.GlintError) -> int | None:
    """The HTTP status for ``exc`` (the nearest class in the table), None when unmapped."""
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return None


def error_response(code: int, message: str, headers: dict[str, str] | None = None) -> Response:
    title = http.HTTPStatus(code).phrase
    body = {"error": {"code": code, "title": title, "message": message}}
    return JSONResponse(body, status_code=code, headers=headers)


def from_error(exc: errors.GlintError) -> Response:
    """The response for a glint error; unmapped ones are unexpected (500)."""
    code = status_of(exc)
    if code is None:
        raise exc
    headers: dict[str, str] = {}
    if isinstance(exc, errors.MethodNotAllowed):
        headers["Allow"] = exc.allow
    if isinstance(exc, errors.UnsupportedMediaType) and exc.accept_patch:
        headers["Accept-Patch"] = exc.accept_patch
    if isinstance(exc, errors.RangeNotSatisfiable) and exc.size is not None:
        headers["Content-Range"] = f"bytes */{exc.size}"
    return error_response(code, exc.message, headers)


async def glint_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, errors.GlintError)
    if isinstance(exc, errors.StoreError) and status_of(exc) is not None:
        # The operator's to fix (a full or read-only store), not a bug: one line, no traceback.
        LOG.warning("store error in %s %s: %s", request.method, request.url.path, exc.message)
    return from_error(exc)


def database_unavailable(exc: Exception) -> bool:
    """Whether ``exc`` says the database cannot be reached (rather than a bug in a query)."""
    if isinstance(exc, sa.exc.TimeoutError):  # no pooled connection came free
        return True
    return isinstance(exc, sa.exc.DBAPIError) and (
        exc.connection_invalidated
        or isinstance(exc, sa.exc.OperationalError | sa.exc.InterfaceError))


async def database_error(request: Request, exc: Exception) -> Response:
    """The database is down: 503 naming it; any other database error is unexpected (500)."""
    if not database_unavailable(exc):
        raise exc
    cause = str(getattr(exc, "orig", None) or exc).strip().splitlines() or [type(exc).__name__]
    LOG.warning("database unavailable in %s %s: %s", request.method, request.url.path, cause[0])
    return from_error(errors.ServiceUnavailable(DATABASE_UNAVAILABLE))


async def http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own errors (no route matched, say) in the same JSON shape."""
    assert isinstance(exc, HTTPException)
    phrase = http.HTTPStatus(exc.status_code).phrase
    message = exc.detail if exc.detail != phrase else _DEFAULT_MESSAGES.get(exc.status_code, phrase)
    return error_response(exc.status_code, message, dict(exc.headers or {}))


async def unexpected(request: Request, exc: Exception) -> Response:
    """Anything else: log it with the request id, answer a 500 that gives nothing away.

    Starlette calls this from its outermost middleware, outside the one that stamps the
    request id, so the id is added here from the request's state.
    """
    request_id = request.scope.get("state", {}).get("request_id")
    LOG.error("unexpected error in %s %s [%s]", request.method, request.url.path, request_id,
              exc_info=exc)
    response = error_response(500, SERVER_ERROR)
    if request_id:
        response.headers[REQUEST_ID_HEADER] = request_id
    return response
