"""How a task looks on the wire and in notifications (Glance's formats)."""

from __future__ import annotations

import datetime
from typing import Any, Protocol

from glint.db import models
from glint.timefmt import isotime, rawtime


class Summary(Protocol):
    """What a list item shows: a task, or a row of a list page (``glint.db.tasks.list_``)."""

    @property
    def id(self) -> str: ...
    @property
    def type(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def owner(self) -> str: ...
    @property
    def created_at(self) -> datetime.datetime: ...
    @property
    def updated_at(self) -> datetime.datetime: ...
    @property
    def expires_at(self) -> datetime.datetime | None: ...


def full(task: models.Task) -> dict[str, Any]:
    """``GET /v2/tasks/{id}``: optional ids and ``expires_at`` omitted while unset.

    ``progress`` (glint's, declared in the served schema) is null until the script reports.
    """
    body = stub(task)
    body.update({"input": task.input, "result": task.result, "message": task.message or "",
                 "progress": task.progress})
    for key in ("image_id", "request_id", "user_id"):
        value = getattr(task, key)
        if value is not None:
            body[key] = value
    return body


def with_lease(task: models.Task) -> dict[str, Any]:
    """:func:`full` plus what an admin sees (declared in the served schema): the runs so far and
    allowed, and the worker (lease owner) holding the task with its lease's expiry."""
    return {**full(task), "attempts": task.attempts, "max_attempts": task.max_attempts,
            "lease_owner": task.lease_owner, "lease_expires_at": isotime(task.lease_expires_at)}


def stub(task: Summary) -> dict[str, Any]:
    """An item of ``GET /v2/tasks``."""
    body: dict[str, Any] = {
        "id": task.id,
        "type": task.type,
        "status": task.status,
        "owner": task.owner,
        "created_at": isotime(task.created_at),
        "updated_at": isotime(task.updated_at),
        "self": f"/v2/tasks/{task.id}",
        "schema": "/v2/schemas/task",
    }
    if task.expires_at is not None:
        body["expires_at"] = isotime(task.expires_at)
    return body


def raw(task: models.Task) -> dict[str, Any]:
    """An item of ``GET /v2/images/{id}/tasks`` (Glance serialises DB rows there)."""
    return {
        "id": task.id, "type": task.type, "status": task.status, "owner": task.owner,
        "input": task.input, "result": task.result, "message": task.message or "",
        "image_id": task.image_id, "request_id": task.request_id, "user_id": task.user_id,
        "expires_at": rawtime(task.expires_at), "created_at": rawtime(task.created_at),
        "updated_at": rawtime(task.updated_at), "deleted": task.deleted,
        "deleted_at": rawtime(task.deleted_at),
    }


def notification(task: models.Task) -> dict[str, Any]:
    """Glance's task payload; ``input`` is left out because it may hold secrets."""
    return {
        "id": task.id, "type": task.type, "status": task.status, "result": task.result,
        "owner": task.owner, "message": task.message or "",
        "expires_at": isotime(task.expires_at), "created_at": isotime(task.created_at),
        "updated_at": isotime(task.updated_at), "deleted": task.deleted,
        "deleted_at": isotime(task.deleted_at),
    }
