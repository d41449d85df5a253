"""The one error hierarchy of glint.

Every error a client can cause is a subclass of :class:`GlintError`; the API maps each class to an
HTTP status in one table (``glint.api.errors``). Scripts raise :class:`ScriptError` (or any
exception) and its message becomes the task's ``message``.
"""

from __future__ import annotations


class GlintError(Exception):
    """Base of every error glint raises on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(GlintError):
    """The request is malformed or names something invalid (HTTP 400)."""


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
    """A store could not read or write image data."""


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
