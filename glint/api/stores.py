"""``DELETE /v2/stores/{store_id}/{image_id}``: remove an image's data from one store
(multi-store, API v2.10; admins by default, the ``delete_image_location`` rule)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from glint.api import identity
from glint.api.images import image_id
from glint.api.routing import resource
from glint.images.locations import Locations


class StoresApi:
    def __init__(self, locations: Locations) -> None:
        self.locations = locations

    def delete(self, request: Request) -> Response:
        store_id = request.path_params["store_id"]
        self.locations.delete_from_store(identity.context(request), store_id, image_id(request))
        return Response(status_code=204)


def routes(locations: Locations) -> list[BaseRoute]:
    api = StoresApi(locations)
    return [resource("/v2/stores/{store_id}/{image_id}", {"DELETE": api.delete})]
