"""``PUT``/``DELETE /v2/images/{id}/tags/{tag}``: one tag at a time (204 either way)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from glint.api import identity
from glint.api.images import image_id
from glint.api.routing import resource
from glint.images.service import ImageService


class ImageTagsApi:
    def __init__(self, images: ImageService) -> None:
        self.images = images

    def add(self, request: Request) -> Response:
        self.images.add_tag(identity.context(request), image_id(request),
                            request.path_params["tag"])
        return Response(status_code=204)

    def remove(self, request: Request) -> Response:
        self.images.remove_tag(identity.context(request), image_id(request),
                               request.path_params["tag"])
        return Response(status_code=204)


def routes(images: ImageService) -> list[BaseRoute]:
    api = ImageTagsApi(images)
    return [resource("/v2/images/{image_id}/tags/{tag}", {"PUT": api.add, "DELETE": api.remove})]
