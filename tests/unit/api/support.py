"""Helpers for the API tests: identities, test scripts, images with data, error bodies."""

from __future__ import annotations

import dataclasses
import hashlib
import warnings
from typing import Any

from starlette.exceptions import StarletteDeprecationWarning

from glint import app, errors
from glint.context import RequestContext
from glint.db import models
from glint.images.service import ImageData
from glint.notifiers.memory import MemoryNotifier

with warnings.catch_warnings():
    # Starlette asks for httpx2; the httpx it falls back to works the same for these tests.
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

__all__ = ["ADMIN", "CTX_A", "CTX_B", "PROJECT_A", "PROJECT_B", "Echo", "Fail", "TestClient",
           "add_image", "error_of"]

PROJECT_A = {"X-User-Id": "user-a", "X-Project-Id": "project-a", "X-Roles": "member,reader"}
PROJECT_B = {"X-User-Id": "user-b", "X-Project-Id": "project-b", "X-Roles": "member"}
ADMIN = {"X-User-Id": "admin", "X-Project-Id": "admin-project", "X-Roles": "Admin, member"}
CTX_A = RequestContext(user_id="user-a", project_id="project-a", roles=("member",))
CTX_B = RequestContext(user_id="user-b", project_id="project-b", roles=("member",))


class Echo:
    """Succeeds with its input as the result."""

    @staticmethod
    def main(ctx: Any) -> dict[str, Any]:
        return {"echo": dict(ctx.task_input)}


class Fail:
    """Always fails with a message."""

    @staticmethod
    def main(ctx: Any) -> dict[str, Any]:
        raise errors.ScriptError("it failed on purpose")


def add_image(glint: app.Glint, ctx: RequestContext, data: bytes | None = None,
              **values: Any) -> models.Image:
    """An image owned by ``ctx``'s project; active with ``data`` in the store when given."""
    values = {"disk_format": "raw", "container_format": "bare", **values}
    # Making an image public is for admins (Glance's publicize_image): an admin of ctx's project.
    creator = dataclasses.replace(ctx, roles=(*ctx.roles, "admin")) if values.get(
        "visibility") == "public" else ctx
    image = glint.images.create(creator, values)
    if data is None:
        return image
    with glint.store.writer(image.id) as writer:
        writer.write(data)
        location = writer.commit()
    stored = ImageData(location=location, size=len(data),
                       checksum=hashlib.md5(data).hexdigest(), os_hash_algo="sha512",
                       os_hash_value=hashlib.sha512(data).hexdigest())
    return glint.images.set_data(ctx, image.id, stored, from_status="queued")


def error_of(response: Any) -> dict[str, Any]:
    """The ``error`` member of a JSON error body, checking the shape on the way."""
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert list(body) == ["error"]
    error: dict[str, Any] = body["error"]
    assert error["code"] == response.status_code
    assert isinstance(error["title"], str) and error["title"]
    assert isinstance(error["message"], str) and error["message"]
    return error


def events(glint: app.Glint) -> list[str]:
    """The event types glint's (memory) notifier got, in order."""
    inner = glint.notifier.inner  # type: ignore[attr-defined]
    assert isinstance(inner, MemoryNotifier)
    return inner.types()
