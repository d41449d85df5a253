"""``/v2/schemas/*``: the documents glanceclient builds its warlock models from.

The static parts are Glance's own (``image_schema.json``, ``task_schema.json``); what varies
with the deployment is filled in here: the installed task types and the configured formats.
glanceclient validates every task and image it receives against these, so they must describe
exactly what glint returns.
"""

from __future__ import annotations

import copy
import functools
import json
from importlib import resources
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from glint.api.routing import resource
from glint.scripts.registry import Registry
from glint.settings import Settings

TASK_STUB_HIDDEN = ("input", "result", "message", "progress")


@functools.cache
def _load(name: str) -> dict[str, Any]:
    text = resources.files("glint.api").joinpath(name).read_text(encoding="utf-8")
    return dict(json.loads(text))


def task(task_types: list[str]) -> dict[str, Any]:
    """Glance's ``Schema.minimal()`` of a task, ``type`` listing the installed task types."""
    schema = copy.deepcopy(_load("task_schema.json"))
    schema["properties"]["type"]["enum"] = list(task_types)
    return schema


def tasks(task_types: list[str]) -> dict[str, Any]:
    """Glance's ``CollectionSchema.minimal()`` of task stubs."""
    item = task(task_types)
    for key in TASK_STUB_HIDDEN:
        del item["properties"][key]
    return {
        "name": "tasks",
        "properties": {"tasks": {"type": "array", "items": item},
                       "schema": {"type": "string"}},
        "links": [{"rel": "describedby", "href": "{schema}"}],
    }


def image(settings: Settings) -> dict[str, Any]:
    """Glance's ``PermissiveSchema.raw()`` of an image: extra properties are strings."""
    schema = copy.deepcopy(_load("image_schema.json"))
    properties = schema["properties"]
    properties["container_format"]["enum"] = [None, *settings.container_formats]
    properties["disk_format"]["enum"] = [None, *settings.disk_formats]
    return schema


def images(settings: Settings) -> dict[str, Any]:
    """Glance's ``CollectionSchema.raw()`` of images."""
    return {
        "name": "images",
        "properties": {"images": {"type": "array", "items": image(settings)},
                       "first": {"type": "string"}, "next": {"type": "string"},
                       "schema": {"type": "string"}},
        "links": [{"rel": "first", "href": "{first}"}, {"rel": "next", "href": "{next}"},
                  {"rel": "describedby", "href": "{schema}"}],
    }


_UUID_PATTERN = ("^([0-9a-fA-F]){8}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}"
                 "-([0-9a-fA-F]){4}-([0-9a-fA-F]){12}$")


def member() -> dict[str, Any]:
    """Glance's ``Schema.minimal()`` of an image member."""
    return {
        "name": "member",
        "properties": {
            "member_id": {"type": "string",
                          "description": "An identifier for the image member (tenantId)"},
            "image_id": {"type": "string", "description": "An identifier for the image",
                         "pattern": _UUID_PATTERN},
            "created_at": {"type": "string",
                           "description": "Date and time of image member creation"},
            "updated_at": {"type": "string",
                           "description": "Date and time of last modification of image member"},
            "status": {"type": "string", "description": "The status of this image member",
                       "enum": ["pending", "accepted", "rejected"]},
            "schema": {"readOnly": True, "type": "string"},
        },
    }


def members() -> dict[str, Any]:
    """Glance's ``CollectionSchema.minimal()`` of image members."""
    return {
        "name": "members",
        "properties": {"members": {"type": "array", "items": member()},
                       "schema": {"type": "string"}},
        "links": [{"rel": "describedby", "href": "{schema}"}],
    }


class SchemasApi:
    def __init__(self, registry: Registry, settings: Settings) -> None:
        self.registry = registry
        self.settings = settings

    async def task(self, request: Request) -> Response:
        return JSONResponse(task(self.registry.types))

    async def tasks(self, request: Request) -> Response:
        return JSONResponse(tasks(self.registry.types))

    async def image(self, request: Request) -> Response:
        return JSONResponse(image(self.settings))

    async def images(self, request: Request) -> Response:
        return JSONResponse(images(self.settings))

    async def member(self, request: Request) -> Response:
        return JSONResponse(member())

    async def members(self, request: Request) -> Response:
        return JSONResponse(members())


def routes(registry: Registry, settings: Settings) -> list[BaseRoute]:
    api = SchemasApi(registry, settings)
    return [
        resource("/v2/schemas/task", {"GET": api.task}),
        resource("/v2/schemas/tasks", {"GET": api.tasks}),
        resource("/v2/schemas/image", {"GET": api.image}),
        resource("/v2/schemas/images", {"GET": api.images}),
        resource("/v2/schemas/member", {"GET": api.member}),
        resource("/v2/schemas/members", {"GET": api.members}),
    ]
