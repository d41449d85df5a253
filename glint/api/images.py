"""``/v2/images``: create, list, show, update (JSON patch) and delete, plus an image's tasks.

Upload and import add their own resources (``image_data``, import); tags, actions and members
live in ``image_tags``, ``image_actions`` and ``image_members``.
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from glint.api import bodies, identity, image_query, params
from glint.api.routing import resource
from glint.db import models
from glint.images import patch
from glint.images.service import ImageService
from glint.settings import Settings
from glint.tasks import views as task_views
from glint.tasks.service import TaskService

IMPORT_METHODS_HEADER = "OpenStack-image-import-methods"
STORE_IDS_HEADER = "OpenStack-image-store-ids"


def image_id(request: Request) -> str:
    """The ``{image_id}`` of the path; NotFound unless it is a UUID (Glance: 404)."""
    raw = request.path_params["image_id"]
    return params.path_id(raw, f"No image found with ID {raw[:64]}")


def media_type(request: Request) -> str:
    """The request's ``Content-Type`` without parameters, lowercased."""
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def create_headers(image: models.Image, settings: Settings) -> dict[str, str]:
    """``Location`` and, when any are enabled, the import methods (openstacksdk reads them)."""
    headers = {"Location": f"/v2/images/{image.id}"}
    if settings.enabled_import_methods:
        headers[IMPORT_METHODS_HEADER] = ",".join(settings.enabled_import_methods)
    if settings.enabled_backends:
        headers[STORE_IDS_HEADER] = ",".join(settings.enabled_backends)
    return headers


class ImagesApi:
    def __init__(self, images: ImageService, tasks: TaskService, settings: Settings) -> None:
        self.images = images
        self.tasks = tasks
        self.settings = settings

    async def create(self, request: Request) -> Response:
        body = await bodies.json_object(request)
        image = await run_in_threadpool(self.images.create, identity.context(request), body)
        return JSONResponse(self.images.view(image), status_code=201,
                            headers=create_headers(image, self.settings))

    def index(self, request: Request) -> Response:
        query = image_query.parse(request.query_params, self.settings)
        found = self.images.list(identity.context(request), query)
        marker = params.next_marker([i.id for i in found], query.limit)
        return JSONResponse({
            "images": [self.images.view(i) for i in found],
            "schema": "/v2/schemas/images",
            **params.page_links("/v2/images", request.query_params, marker),
        })

    def show(self, request: Request) -> Response:
        return JSONResponse(self.images.view(self._get(request)))

    async def update(self, request: Request) -> Response:
        """``PATCH``: the whole document is checked before anything is written."""
        wanted = image_id(request)
        patch.check_media_type(media_type(request))
        changes = patch.parse(await bodies.json_value(request), media_type(request),
                              self.settings)
        image = await run_in_threadpool(self.images.update, identity.context(request), wanted,
                                        changes)
        return JSONResponse(self.images.view(image))

    def delete(self, request: Request) -> Response:
        self.images.delete(identity.context(request), image_id(request))
        return Response(status_code=204)

    def image_tasks(self, request: Request) -> Response:
        """``GET /v2/images/{id}/tasks`` (API v2.12): Glance's raw task rows."""
        image = self._get(request)
        return JSONResponse({"tasks": [task_views.raw(t) for t in self.tasks.for_image(image.id)]})

    def _get(self, request: Request) -> models.Image:
        return self.images.get(identity.context(request), image_id(request))


def routes(images: ImageService, tasks: TaskService, settings: Settings) -> list[BaseRoute]:
    api = ImagesApi(images, tasks, settings)
    return [
        resource("/v2/images", {"GET": api.index, "POST": api.create}),
        resource("/v2/images/{image_id}",
                 {"GET": api.show, "PATCH": api.update, "DELETE": api.delete}),
        resource("/v2/images/{image_id}/tasks", {"GET": api.image_tasks}),
    ]
