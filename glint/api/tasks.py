"""``/v2/tasks``: Glance's Tasks API (create, list stubs, show; tasks are never deleted by API)."""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from glint import errors
from glint.api import bodies, identity, params
from glint.api.routing import resource
from glint.db import tasks as task_rows
from glint.scripts.registry import Registry
from glint.settings import Settings
from glint.tasks import states, views
from glint.tasks.service import TaskService

CREATE_KEYS = ("type", "input")
DELETE_MESSAGE = ("This operation is currently not permitted on Glance Tasks. They are auto "
                  "deleted after reaching the time based on their expires_at property.")


def create_args(body: dict[str, Any]) -> tuple[str, Any]:
    """``type`` and ``input`` from a create body; nothing else is allowed in it."""
    for key in CREATE_KEYS:
        if key not in body:
            raise errors.BadRequest(f"Task '{key}' is required")
    extra = sorted(set(body) - set(CREATE_KEYS))
    if extra:
        raise errors.BadRequest(f"Invalid task: unexpected properties {', '.join(extra)}; "
                                "a task has only 'type' and 'input'")
    if not isinstance(body["type"], str):
        raise errors.BadRequest("Task 'type' must be a string")
    return body["type"], body["input"]


def list_query(query: QueryParams, registry: Registry, settings: Settings) -> task_rows.TaskQuery:
    """A TaskQuery from ``GET /v2/tasks`` parameters (Glance ignores the ones it does not know)."""
    params.check(query)
    filters: dict[str, str] = {}
    if "status" in query:
        filters["status"] = params.one_of("status", query["status"], states.STATUSES)
    if "type" in query:
        filters["type"] = params.one_of("type", query["type"], registry.types)
    return task_rows.TaskQuery(
        limit=params.limit(query, settings), marker=params.marker(query),
        sort_key=params.one_of("sort_key", query.get("sort_key", "created_at"),
                               sorted(task_rows.SORT_KEYS)),
        sort_dir=params.one_of("sort_dir", query.get("sort_dir", "desc"), ("asc", "desc")),
        filters=filters)


class TasksApi:
    def __init__(self, service: TaskService, registry: Registry, settings: Settings) -> None:
        self.service = service
        self.registry = registry
        self.settings = settings

    async def create(self, request: Request) -> Response:
        task_type, task_input = create_args(await bodies.json_object(request))
        ctx = identity.context(request)
        task = await run_in_threadpool(self.service.create, ctx, task_type, task_input)
        return JSONResponse(views.full(task), status_code=201,
                            headers={"Location": f"/v2/tasks/{task.id}"})

    def index(self, request: Request) -> Response:
        query = list_query(request.query_params, self.registry, self.settings)
        found = self.service.list(identity.context(request), query)
        marker = params.next_marker([t.id for t in found], query.limit)
        return JSONResponse({
            "tasks": [views.stub(t) for t in found],
            "schema": "/v2/schemas/tasks",
            **params.page_links("/v2/tasks", request.query_params, marker),
        })

    def show(self, request: Request) -> Response:
        """The task; an admin also sees its attempts and the worker holding its lease."""
        raw_id = request.path_params["task_id"]
        task_id = params.path_id(raw_id, f"Task with identifier {raw_id[:64]} not found")
        ctx = identity.context(request)
        task = self.service.get(ctx, task_id)
        return JSONResponse(views.with_lease(task) if ctx.is_admin else views.full(task))

    def delete(self, request: Request) -> Response:
        raise errors.MethodNotAllowed(DELETE_MESSAGE, allow="GET")

    def cancel(self, request: Request) -> Response:
        """``POST /v2/tasks/{id}/actions/cancel`` (a glint extension): 202 with the task.

        A pending task is failed at once; a running one stops at its script's next
        ``should_cancel()`` check, so the body may still say ``processing``.
        """
        raw_id = request.path_params["task_id"]
        task_id = params.path_id(raw_id, f"Task with identifier {raw_id[:64]} not found")
        task = self.service.cancel(identity.context(request), task_id)
        return JSONResponse(views.full(task), status_code=202)


def routes(service: TaskService, registry: Registry, settings: Settings,
           inline_reads: bool = False) -> list[BaseRoute]:
    """The routes; with ``inline_reads`` (a local database) lists and shows run on the event
    loop (see :class:`glint.api.routing.Resource`)."""
    api = TasksApi(service, registry, settings)
    reads = ("GET",) if inline_reads else ()
    return [
        resource("/v2/tasks", {"GET": api.index, "POST": api.create}, inline=reads),
        resource("/v2/tasks/{task_id}", {"GET": api.show, "DELETE": api.delete}, inline=reads),
        resource("/v2/tasks/{task_id}/actions/cancel", {"POST": api.cancel}),
    ]
