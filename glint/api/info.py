"""``/v2/info/*``: what this glint offers (import methods, its store) and a project's usage."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from glint.api import identity
from glint.api.routing import resource
from glint.images import imports, usage
from glint.images.service import ImageService
from glint.settings import Settings


class InfoApi:
    def __init__(self, images: ImageService, settings: Settings) -> None:
        self.images = images
        self.settings = settings

    async def import_methods(self, request: Request) -> Response:
        """The enabled import methods glint can run."""
        methods = [m for m in self.settings.enabled_import_methods if m in imports.NEEDED_STATUS]
        return JSONResponse({"import-methods": {"description": "Import methods available.",
                                                "type": "array", "value": methods}})

    async def stores(self, request: Request) -> Response:
        """The one store, as Glance lists its stores (openstacksdk's ``stores()`` reads it)."""
        store = self.images.store
        return JSONResponse({"stores": [{
            "id": store.name, "default": "true",
            "description": f"glint's {store.name} store (the only store)"}]})

    def usage(self, request: Request) -> Response:
        owner = identity.context(request).owner
        return JSONResponse({"usage": usage.of_project(self.images.db, owner)})


def routes(images: ImageService, settings: Settings) -> list[BaseRoute]:
    api = InfoApi(images, settings)
    return [resource("/v2/info/import", {"GET": api.import_methods}),
            resource("/v2/info/stores", {"GET": api.stores}),
            resource("/v2/info/usage", {"GET": api.usage})]
