"""``GET /openapi.json``: the OpenAPI 3.1 document of everything glint serves.

``openapi.yaml`` (beside this module) is the hand-written part: each operation's parameters,
bodies and responses. :func:`document` completes it for one deployment with what is the same
for every operation, because middleware or Glance's schemas provide it rather than the
operation itself:

- the ``x-openstack-request-id`` header, accepted on every request and sent on every response
  (:mod:`glint.api.request_id`), and the 400 a malformed one (or identity header) gets;
- the 401 every operation that needs an identity can answer (:mod:`glint.api.identity`);
- the ``Image``, ``Task``, ``TaskStub`` and ``Member`` schemas, built from the ones
  ``/v2/schemas/*`` serves (:mod:`glint.api.schemas`), so formats and task types are this
  deployment's, with the attributes glint always returns marked required.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Iterator
from importlib import resources
from typing import Any

import yaml
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from glint.api import schemas
from glint.api.routing import resource
from glint.scripts.registry import Registry
from glint.settings import Settings

PATH = "/openapi.json"
METHODS = ("get", "put", "post", "delete", "patch")
REQUEST_ID = {"$ref": "#/components/parameters/RequestId"}
REQUEST_ID_HEADER = "x-openstack-request-id"
# What the views always return (glint.images.views.api, glint.tasks.views, member).
IMAGE_REQUIRED = ("id", "name", "status", "visibility", "protected", "os_hidden", "checksum",
                  "os_hash_algo", "os_hash_value", "owner", "size", "virtual_size",
                  "container_format", "disk_format", "min_ram", "min_disk", "created_at",
                  "updated_at", "tags", "self", "file", "schema")
TASK_STUB_REQUIRED = ("id", "type", "status", "owner", "created_at", "updated_at", "self",
                      "schema")
TASK_REQUIRED = (*TASK_STUB_REQUIRED, "input", "result", "message", "progress")
MEMBER_REQUIRED = ("member_id", "image_id", "status", "created_at", "updated_at", "schema")


@functools.cache
def _written() -> dict[str, Any]:
    text = resources.files("glint.api").joinpath("openapi.yaml").read_text(encoding="utf-8")
    return dict(yaml.safe_load(text))


def document(settings: Settings, task_types: list[str]) -> dict[str, Any]:
    """The OpenAPI document for a glint with ``settings`` and these installed task types."""
    doc = copy.deepcopy(_written())
    if not settings.effective_image_cache_enabled:  # no image cache, no /v2/cache
        doc["paths"] = {path: item for path, item in doc["paths"].items()
                        if not path.startswith("/v2/cache")}
    components = doc["components"]
    components["schemas"].update(glance_schemas(settings, task_types))
    for response in components["responses"].values():
        _stamp_request_id(response)
    for operation in operations(doc):
        _complete(operation, public=operation.get("security") == [])
    return doc


def operations(doc: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every operation object of ``doc``."""
    for item in doc["paths"].values():
        for method in METHODS:
            if method in item:
                yield item[method]


def glance_schemas(settings: Settings, task_types: list[str]) -> dict[str, Any]:
    """Glance's schemas as components, with the attributes glint always sends required."""
    stub = schemas.tasks(task_types)["properties"]["tasks"]["items"]
    return {
        "Image": _component(schemas.image(settings), IMAGE_REQUIRED),
        "Task": _component(schemas.task(task_types), TASK_REQUIRED),
        "TaskStub": _component(stub, TASK_STUB_REQUIRED),
        "Member": _component(schemas.member(), MEMBER_REQUIRED),
    }


def _component(glance_schema: dict[str, Any], required: tuple[str, ...]) -> dict[str, Any]:
    # ``name`` and ``links`` are Glance's annotations (for warlock), not JSON Schema.
    schema = {k: v for k, v in glance_schema.items() if k not in ("name", "links")}
    return {"type": "object", **schema, "required": list(required)}


def _complete(operation: dict[str, Any], public: bool) -> None:
    operation.setdefault("parameters", []).append(REQUEST_ID)
    responses = operation["responses"]
    responses.setdefault("400", {"$ref": "#/components/responses/BadRequest"})
    if not public:
        responses.setdefault("401", {"$ref": "#/components/responses/Unauthorized"})
    for response in responses.values():
        _stamp_request_id(response)


def _stamp_request_id(response: dict[str, Any]) -> None:
    if "$ref" not in response:  # a component, stamped once where it is defined
        response.setdefault("headers", {})[REQUEST_ID_HEADER] = {
            "$ref": "#/components/headers/RequestId"}


class OpenApi:
    def __init__(self, settings: Settings, registry: Registry) -> None:
        self.settings = settings
        self.registry = registry

    @functools.cached_property
    def body(self) -> bytes:
        return bytes(JSONResponse(document(self.settings, self.registry.types)).body)

    async def show(self, request: Request) -> Response:
        return Response(self.body, media_type="application/json")


def routes(settings: Settings, registry: Registry) -> list[BaseRoute]:
    return [resource(PATH, {"GET": OpenApi(settings, registry).show})]
