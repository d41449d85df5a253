"""``/v2/info/*``: what this glint offers (import methods, its store) and a project's usage."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from glint import policy as policies
from glint.api import identity
from glint.api.routing import resource
from glint.db import engine
from glint.images import usage
from glint.images.service import ImageService
from glint.imports import methods as imports
from glint.settings import Settings


class InfoApi:
    def __init__(self, images: ImageService, settings: Settings, db: engine.Database) -> None:
        self.images = images
        self.db = db
        self.settings = settings

    async def import_methods(self, request: Request) -> Response:
        """The enabled import methods glint can run."""
        methods = [m for m in self.settings.enabled_import_methods if m in imports.NEEDED_STATUS]
        return JSONResponse({"import-methods": {"description": "Import methods available.",
                                                "type": "array", "value": methods}})

    async def stores(self, request: Request) -> Response:
        """The stores, as Glance lists them (openstacksdk's ``stores()`` reads it); without
        multi-store, the one store."""
        return JSONResponse({"stores": [self._store(i) for i in self.images.backends.ids]})

    def stores_detail(self, request: Request) -> Response:
        """The stores with their types (``stores_info_detail``: admins and services)."""
        ctx = identity.context(request)
        self.images.policy.enforce(ctx, "stores_info_detail", policies.project_target(ctx))
        return JSONResponse({"stores": [{**self._store(i), **self._detail(i)}
                                        for i in self.images.backends.ids]})

    def _store(self, store_id: str) -> dict[str, str]:
        backends = self.images.backends
        if not backends.multi:
            return {"id": store_id, "default": "true",
                    "description": f"glint's {store_id} store (the only store)"}
        store = {"id": store_id,
                 "description": f"glint's {backends.types[store_id]} store {store_id}"}
        return store | ({"default": "true"} if store_id == backends.default else {})

    def _detail(self, store_id: str) -> dict[str, object]:
        store = self.images.backends.backend(store_id)
        path = getattr(store, "path", None)
        properties = {"data_dir": str(path)} if path is not None else {}
        return {"type": self.images.backends.types[store_id], "weight": 0,
                "properties": properties}

    def usage(self, request: Request) -> Response:
        owner = identity.context(request).owner
        return JSONResponse({"usage": usage.of_project(self.db, owner)})


def routes(images: ImageService, settings: Settings, db: engine.Database) -> list[BaseRoute]:
    api = InfoApi(images, settings, db)
    return [resource("/v2/info/import", {"GET": api.import_methods}),
            resource("/v2/info/stores", {"GET": api.stores}),
            resource("/v2/info/stores/detail", {"GET": api.stores_detail}),
            resource("/v2/info/usage", {"GET": api.usage})]
