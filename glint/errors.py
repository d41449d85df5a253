"""The one error hierarchy of glint.

Every error a client can cause is a subclass of :class:`GlintError`; the API maps each class to an
HTTP status in one table (``glint.api.errors``). Scripts raise :class:`ScriptError` (or any
exception) and its message becomes the task's ``message``.
"""

from __future__ import annotations

import errno


class GlintError(Exception):
    """Base of every error glint raises on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(GlintError):
    """The request is malformed or names something invalid (HTTP 400)."""


class MalformedUrl(BadRequest):
    """A URL that does not parse: no host, a bad port, a character no URL has (HTTP 400)."""


class Unauthorized(GlintError):
    """No usable credentials came with the request (HTTP 401)."""


class Forbidden(GlintError):
    """The caller may not do this (HTTP 403)."""


class NotFound(GlintError):
    """The resource does not exist or is not visible to the caller (HTTP 404)."""


class MethodNotAllowed(GlintError):
    """The method is not served on this resource (HTTP 405)."""

    def __init__(self, message: str, allow: str) -> None:
        super().__init__(message)
        self.allow = allow


class Conflict(GlintError):
    """The resource is in a state that does not allow this (HTTP 409)."""


class Gone(GlintError):
    """The resource went away while the request ran (HTTP 410)."""


class TooLarge(GlintError):
    """Data exceeds a size limit (HTTP 413)."""


class UnsupportedMediaType(GlintError):
    """The request's content type is not accepted (HTTP 415)."""

    def __init__(self, message: str, accept_patch: str | None = None) -> None:
        super().__init__(message)
        self.accept_patch = accept_patch


class RangeNotSatisfiable(GlintError):
    """A ``Range`` header asks for bytes the image does not have (HTTP 416)."""

    def __init__(self, message: str, size: int | None = None) -> None:
        super().__init__(message)
        self.size = size  # the image's size, for ``Content-Range: bytes */<size>``


class InvalidTransition(GlintError):
    """A task or image status change that the transition table does not allow."""


class StoreError(GlintError):
    """A store could not read or write image data (unexpected: HTTP 500, unless a subclass)."""


class StoreFull(StoreError):
    """The store has no room for the data: its filesystem is full, or its quota spent
    (HTTP 413, Glance's ``StorageFull``)."""


class StoreUnwritable(StoreError):
    """The store refuses writes: a read-only filesystem, or permission denied (HTTP 503, as
    Glance answers ``StorageWriteDenied``): the operator must fix it; the client may retry."""


# errno values of an OSError from a store, by what they mean for the client (Glance's mapping,
# with EDQUOT and EROFS/EPERM added: the same condition by other names).
_FULL = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
_UNWRITABLE = frozenset({errno.EROFS, errno.EACCES, errno.EPERM})


def store_error(exc: OSError) -> StoreError:
    """The StoreError an OSError raised by a store means, with a message for the client."""
    reason = exc.strerror or str(exc)
    if exc.errno in _FULL:
        return StoreFull(f"Image storage media is full: {reason}")
    if exc.errno in _UNWRITABLE:
        return StoreUnwritable(f"Image storage media cannot be written: {reason}")
    return StoreError(f"Image storage media failed: {reason}")


class ScriptError(GlintError):
    """Raised by a script to fail its task with a message meant for the user."""


class ImageRefused(ScriptError):
    """The safety gate (:mod:`glint.gate`) refused image data: unsafe, or not what was said.

    An upload answers 415 with it; a task fails with its message.
    """


class TransientError(ScriptError):
    """Raised by a script for a failure that may pass (a server's 503, a dropped connection).

    The runner runs the script again, with backoff, up to the ``task_retry_limit`` setting;
    the task's ``message`` says which attempt failed and when the next starts.
    """


class LeaseLost(Conflict):
    """A worker wrote about a task whose lease it no longer holds (it was given to another)."""


class ServiceUnavailable(GlintError):
    """A service glint depends on (the broker, the database) cannot be reached (HTTP 503)."""


class ScriptLoadError(GlintError):
    """A script package could not be loaded or failed validation."""


class ConfigurationError(GlintError):
    """Settings name something that does not exist or cannot work."""
