"""``POST /v2/images/{id}/import``: start an interoperable import (202, empty body)."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from glint.api import bodies, identity
from glint.api.images import image_id
from glint.api.routing import resource
from glint.imports import methods, service
from glint.settings import Settings
from glint.stores.multi import MultiStore

STORE_HEADER = "x-image-meta-store"


class ImageImportApi:
    def __init__(self, imports_service: service.Imports, settings: Settings,
                 backends: MultiStore) -> None:
        self.imports = imports_service
        self.settings = settings
        self.backends = backends

    async def import_image(self, request: Request) -> Response:
        wanted = image_id(request)
        body = await bodies.json_object(request)
        import_request = methods.parse(body, request.headers.get(STORE_HEADER), self.settings,
                                       self.backends)
        await run_in_threadpool(self.imports.start, identity.context(request), wanted,
                                import_request)
        return Response(status_code=202)


def routes(imports_service: service.Imports, settings: Settings,
           backends: MultiStore) -> list[BaseRoute]:
    api = ImageImportApi(imports_service, settings, backends)
    return [resource("/v2/images/{image_id}/import", {"POST": api.import_image})]
