"""``/v2/images/{id}/members[/{member}]``: sharing an image with other projects.

Bodies and status codes are Glance's: ``POST`` answers 200 (not 201) with the member,
``DELETE`` 204; the rules live in :mod:`glint.images.members`.
"""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from glint import errors
from glint.api import bodies, identity
from glint.api.images import image_id
from glint.api.routing import resource
from glint.images import members, views
from glint.images.members import MemberService


def member_of(body: dict[str, Any]) -> str:
    """``{"member": "<project>"}`` → the project id."""
    if "member" not in body:
        raise errors.BadRequest("Member to be added not specified")
    return members.check_member_id(body["member"])


def status_of(body: dict[str, Any]) -> str:
    """``{"status": "accepted"}`` → the status (checked against the member later)."""
    if "status" not in body:
        raise errors.BadRequest("Status not specified")
    status = body["status"]
    if not isinstance(status, str):
        raise errors.BadRequest('Expected a status in the form: {"status": "status"}')
    return status


class ImageMembersApi:
    def __init__(self, service: MemberService) -> None:
        self.service = service

    def index(self, request: Request) -> Response:
        found = self.service.list(identity.context(request), image_id(request))
        return JSONResponse({"members": [views.member(m) for m in found],
                             "schema": "/v2/schemas/members"})

    async def create(self, request: Request) -> Response:
        wanted = image_id(request)
        member_id = member_of(await bodies.json_object(request))
        row = await run_in_threadpool(self.service.create, identity.context(request), wanted,
                                      member_id)
        return JSONResponse(views.member(row))

    def show(self, request: Request) -> Response:
        row = self.service.get(identity.context(request), image_id(request),
                               request.path_params["member_id"])
        return JSONResponse(views.member(row))

    async def update(self, request: Request) -> Response:
        wanted = image_id(request)
        status = status_of(await bodies.json_object(request))
        row = await run_in_threadpool(self.service.update, identity.context(request), wanted,
                                      request.path_params["member_id"], status)
        return JSONResponse(views.member(row))

    def delete(self, request: Request) -> Response:
        self.service.delete(identity.context(request), image_id(request),
                            request.path_params["member_id"])
        return Response(status_code=204)


def routes(service: MemberService) -> list[BaseRoute]:
    api = ImageMembersApi(service)
    return [
        resource("/v2/images/{image_id}/members", {"GET": api.index, "POST": api.create}),
        resource("/v2/images/{image_id}/members/{member_id}",
                 {"GET": api.show, "PUT": api.update, "DELETE": api.delete}),
    ]
