"""``POST /v2/images/{id}/actions/deactivate`` and ``.../reactivate`` (204).

A deactivated image keeps its data but only admins may download it; only the owner (or an
admin) switches it, and only between ``active`` and ``deactivated`` (Glance: 403 otherwise).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from glint.api import identity
from glint.api.images import image_id
from glint.api.routing import resource
from glint.images.service import ImageService


class ImageActionsApi:
    def __init__(self, images: ImageService) -> None:
        self.images = images

    def deactivate(self, request: Request) -> Response:
        self.images.deactivate(identity.context(request), image_id(request))
        return Response(status_code=204)

    def reactivate(self, request: Request) -> Response:
        self.images.reactivate(identity.context(request), image_id(request))
        return Response(status_code=204)


def routes(images: ImageService) -> list[BaseRoute]:
    api = ImageActionsApi(images)
    return [
        resource("/v2/images/{image_id}/actions/deactivate", {"POST": api.deactivate}),
        resource("/v2/images/{image_id}/actions/reactivate", {"POST": api.reactivate}),
    ]
