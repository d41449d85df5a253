"""``glint.api.routing``: which handlers run on the event loop and which in the thread pool."""

from __future__ import annotations

import threading

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response

from glint.api import routing
from tests.unit.api.support import TestClient


def test_inline_methods_run_on_the_event_loop_and_the_rest_in_threads() -> None:
    threads: dict[str, threading.Thread] = {}

    def handler(request: Request) -> Response:
        threads[request.method] = threading.current_thread()
        return Response()

    async def loop(request: Request) -> Response:
        threads["loop"] = threading.current_thread()
        return Response()

    app = Starlette(routes=[routing.resource("/r", {"GET": handler, "POST": handler},
                                             inline=("GET",)),
                            routing.resource("/loop", {"GET": loop})])
    with TestClient(app) as client:
        for method, path in (("GET", "/r"), ("POST", "/r"), ("GET", "/loop")):
            assert client.request(method, path).status_code == 200
    assert threads["GET"] is threads["loop"]
    assert threads["POST"] is not threads["loop"]
