"""``/v2/metadefs``: namespaces and the objects, properties, tags and resource type
associations they hold, plus ``/v2/schemas/metadefs/*`` (Glance's metadata definitions API).

Bodies are checked against Glance's schemas (:mod:`glint.api.metadef_schemas`); the service
(:mod:`glint.metadefs.service`) does the rest.
"""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from glint import errors
from glint.api import bodies, identity, params
from glint.api import metadef_schemas as schemas
from glint.api.routing import resource
from glint.db import metadefs as rows
from glint.metadefs.service import MetadefService
from glint.metadefs.views import NAMESPACES
from glint.settings import Settings

NAMESPACE = NAMESPACES + "/{namespace}"
READ_ONLY = ("self", "schema", "created_at", "updated_at")
TIMES = ("created_at", "updated_at")
APPEND_HEADER = "x-openstack-append"
TRUE = ("1", "t", "true", "on", "y", "yes")  # oslo's bool_from_string, as Glance reads it


def namespace_query(query: QueryParams, settings: Settings) -> rows.NamespaceQuery:
    """The list's ``limit``, ``marker``, ``sort_key``, ``sort_dir`` and filters."""
    params.check(query)
    visibility = query.get("visibility")
    if visibility is not None:
        params.one_of("visibility", visibility, ("public", "private"))
    types = query.get("resource_types", "")
    return rows.NamespaceQuery(
        limit=params.limit(query, settings), marker=query.get("marker") or None,
        sort_key=params.one_of("sort_key", query.get("sort_key", "created_at"), rows.SORT_KEYS),
        sort_dir=params.one_of("sort_dir", query.get("sort_dir", "desc"), ("asc", "desc")),
        visibility=visibility,
        resource_types=tuple(t.strip() for t in types.split(",") if t.strip()))


class MetadefsApi:
    def __init__(self, service: MetadefService, settings: Settings) -> None:
        self.service = service
        self.contents = service.contents
        self.settings = settings

    # -- namespaces ----------------------------------------------------------------------

    def list_namespaces(self, request: Request) -> Response:
        query = namespace_query(request.query_params, self.settings)
        found = self.service.list_namespaces(identity.context(request), query)
        marker = found[-1]["namespace"] if found and len(found) == query.limit else None
        return JSONResponse({"namespaces": found, "schema": "/v2/schemas/metadefs/namespaces",
                             **params.page_links(NAMESPACES, request.query_params, marker)})

    async def create_namespace(self, request: Request) -> Response:
        body = schemas.check("namespace", await bodies.json_value(request), READ_ONLY)
        created = await run_in_threadpool(self.service.create_namespace,
                                          identity.context(request), body)
        return JSONResponse(created, status_code=201, headers={"Location": created["self"]})

    def show_namespace(self, request: Request) -> Response:
        params.check(request.query_params)
        return JSONResponse(self.service.get_namespace(
            identity.context(request), _name(request),
            request.query_params.get("resource_type")))

    async def update_namespace(self, request: Request) -> Response:
        body = schemas.check("namespace", await bodies.json_value(request), READ_ONLY)
        return JSONResponse(await run_in_threadpool(
            self.service.update_namespace, identity.context(request), _name(request), body))

    def delete_namespace(self, request: Request) -> Response:
        self.service.delete_namespace(identity.context(request), _name(request))
        return Response(status_code=204)

    # -- objects -------------------------------------------------------------------------

    def list_objects(self, request: Request) -> Response:
        found = self.contents.list_objects(identity.context(request), _name(request))
        return JSONResponse({"objects": found, "schema": "/v2/schemas/metadefs/objects"})

    async def create_object(self, request: Request) -> Response:
        body = schemas.check("object", await bodies.json_value(request), READ_ONLY)
        return JSONResponse(await run_in_threadpool(
            self.contents.create_object, identity.context(request), _name(request), body),
            status_code=201)

    def show_object(self, request: Request) -> Response:
        return JSONResponse(self.contents.get_object(identity.context(request), _name(request),
                                                     _name(request, "object_name")))

    async def update_object(self, request: Request) -> Response:
        body = schemas.check("object", await bodies.json_value(request), READ_ONLY)
        return JSONResponse(await run_in_threadpool(
            self.contents.update_object, identity.context(request), _name(request),
            _name(request, "object_name"), body))

    def delete_object(self, request: Request) -> Response:
        self.contents.delete_object(identity.context(request), _name(request),
                                    _name(request, "object_name"))
        return Response(status_code=204)

    # -- properties ----------------------------------------------------------------------

    def list_properties(self, request: Request) -> Response:
        found = self.contents.list_properties(identity.context(request), _name(request))
        return JSONResponse({"properties": found, "schema": "/v2/schemas/metadefs/properties"})

    async def create_property(self, request: Request) -> Response:
        body = schemas.check("property", await bodies.json_value(request))
        return JSONResponse(await run_in_threadpool(
            self.contents.create_property, identity.context(request), _name(request), body),
            status_code=201)

    def show_property(self, request: Request) -> Response:
        return JSONResponse(self.contents.get_property(
            identity.context(request), _name(request), _name(request, "property_name")))

    async def update_property(self, request: Request) -> Response:
        body = schemas.check("property", await bodies.json_value(request))
        return JSONResponse(await run_in_threadpool(
            self.contents.update_property, identity.context(request), _name(request),
            _name(request, "property_name"), body))

    def delete_property(self, request: Request) -> Response:
        self.contents.delete_property(identity.context(request), _name(request),
                                      _name(request, "property_name"))
        return Response(status_code=204)

    # -- tags ----------------------------------------------------------------------------

    def list_tags(self, request: Request) -> Response:
        return JSONResponse({"tags": self.contents.list_tags(identity.context(request),
                                                             _name(request))})

    async def create_tags(self, request: Request) -> Response:
        body = schemas.check("tags", await bodies.json_value(request), TIMES)
        tags = body.get("tags")
        if not isinstance(tags, list):
            raise errors.BadRequest("Expected {\"tags\": [{\"name\": ...}, ...]}.")
        append = request.headers.get(APPEND_HEADER, "").strip().lower() in TRUE
        created = await run_in_threadpool(
            self.contents.create_tags, identity.context(request), _name(request),
            [schemas.check("tag", tag, TIMES)["name"] for tag in tags], append)
        return JSONResponse({"tags": created}, status_code=201)

    def delete_tags(self, request: Request) -> Response:
        self.contents.delete_tags(identity.context(request), _name(request))
        return Response(status_code=204)

    def create_tag(self, request: Request) -> Response:
        return JSONResponse(self.contents.create_tag(
            identity.context(request), _name(request), _name(request, "tag_name")),
            status_code=201)

    def show_tag(self, request: Request) -> Response:
        return JSONResponse(self.contents.get_tag(identity.context(request), _name(request),
                                                  _name(request, "tag_name")))

    async def update_tag(self, request: Request) -> Response:
        body = schemas.check("tag", await bodies.json_value(request), TIMES)
        return JSONResponse(await run_in_threadpool(
            self.contents.rename_tag, identity.context(request), _name(request),
            _name(request, "tag_name"), body["name"]))

    def delete_tag(self, request: Request) -> Response:
        self.contents.delete_tag(identity.context(request), _name(request),
                                 _name(request, "tag_name"))
        return Response(status_code=204)

    # -- resource types ------------------------------------------------------------------

    def list_resource_types(self, request: Request) -> Response:
        found = self.service.list_resource_types(identity.context(request))
        return JSONResponse({"resource_types": found})

    def list_associations(self, request: Request) -> Response:
        found = self.service.list_associations(identity.context(request), _name(request))
        return JSONResponse({"resource_type_associations": found})

    async def associate(self, request: Request) -> Response:
        body = schemas.check("resource_type", await bodies.json_value(request), TIMES)
        return JSONResponse(await run_in_threadpool(
            self.service.associate, identity.context(request), _name(request), body),
            status_code=201)

    def dissociate(self, request: Request) -> Response:
        self.service.dissociate(identity.context(request), _name(request),
                                _name(request, "resource_type"))
        return Response(status_code=204)

    # -- schemas -------------------------------------------------------------------------

    async def schema(self, request: Request) -> Response:
        name = request.path_params["schema_name"]
        if name not in schemas.NAMES:
            raise errors.NotFound(f"No metadefs schema {name[:64]!r}.")
        return JSONResponse(schemas.document(name))


def _name(request: Request, param: str = "namespace") -> str:
    value: Any = request.path_params[param]
    return str(value)


def routes(service: MetadefService, settings: Settings) -> list[BaseRoute]:
    api = MetadefsApi(service, settings)
    return [
        resource("/v2/schemas/metadefs/{schema_name}", {"GET": api.schema}),
        resource(NAMESPACES, {"GET": api.list_namespaces, "POST": api.create_namespace}),
        resource(NAMESPACE, {"GET": api.show_namespace, "PUT": api.update_namespace,
                             "DELETE": api.delete_namespace}),
        resource(f"{NAMESPACE}/objects", {"GET": api.list_objects, "POST": api.create_object}),
        resource(f"{NAMESPACE}/objects/{{object_name}}",
                 {"GET": api.show_object, "PUT": api.update_object, "DELETE": api.delete_object}),
        resource(f"{NAMESPACE}/properties",
                 {"GET": api.list_properties, "POST": api.create_property}),
        resource(f"{NAMESPACE}/properties/{{property_name}}",
                 {"GET": api.show_property, "PUT": api.update_property,
                  "DELETE": api.delete_property}),
        resource(f"{NAMESPACE}/tags",
                 {"GET": api.list_tags, "POST": api.create_tags, "DELETE": api.delete_tags}),
        resource(f"{NAMESPACE}/tags/{{tag_name}}",
                 {"GET": api.show_tag, "POST": api.create_tag, "PUT": api.update_tag,
                  "DELETE": api.delete_tag}),
        resource("/v2/metadefs/resource_types", {"GET": api.list_resource_types}),
        resource(f"{NAMESPACE}/resource_types",
                 {"GET": api.list_associations, "POST": api.associate}),
        resource(f"{NAMESPACE}/resource_types/{{resource_type}}", {"DELETE": api.dissociate}),
    ]
