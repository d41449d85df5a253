"""``/v2/info/*``: what this glint offers. Import methods arrive with the import API."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from glint.api.routing import resource

IMPORT_METHODS: tuple[str, ...] = ()


async def import_info(request: Request) -> Response:
    return JSONResponse({"import-methods": {"description": "Import methods available.",
                                            "type": "array", "value": list(IMPORT_METHODS)}})


def routes() -> list[BaseRoute]:
    return [resource("/v2/info/import", {"GET": import_info})]
