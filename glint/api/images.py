"""``/v2/images``: list, show and delete, plus an image's tasks.

Create, update, upload and import come with the full Images API; they slot in as more methods
on the resources below.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from glint.api import identity, image_query, params
from glint.api.routing import resource
from glint.db import models
from glint.images import views
from glint.images.service import ImageService
from glint.settings import Settings
from glint.tasks import views as task_views
from glint.tasks.service import TaskService


def image_id(request: Request) -> str:
    """The ``{image_id}`` of the path; NotFound unless it is a UUID (Glance: 404)."""
    raw = request.path_params["image_id"]
    return params.path_id(raw, f"No image found with ID {raw[:64]}")


class ImagesApi:
    def __init__(self, images: ImageService, tasks: TaskService, settings: Settings) -> None:
        self.images = images
        self.tasks = tasks
        self.settings = settings

    def index(self, request: Request) -> Response:
        query = image_query.parse(request.query_params, self.settings)
        found = self.images.list(identity.context(request), query)
        marker = params.next_marker([i.id for i in found], query.limit)
        return JSONResponse({
            "images": [views.api(i) for i in found],
            "schema": "/v2/schemas/images",
            **params.page_links("/v2/images", request.query_params, marker),
        })

    def show(self, request: Request) -> Response:
        return JSONResponse(views.api(self._get(request)))

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
        resource("/v2/images", {"GET": api.index}),
        resource("/v2/images/{image_id}", {"GET": api.show, "DELETE": api.delete}),
        resource("/v2/images/{image_id}/tasks", {"GET": api.image_tasks}),
    ]
