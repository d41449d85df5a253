"""What the image-import API tests share (test_image_import*.py): the scripts, the glint and
the web server, and the requests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from glint import app
from glint.scripts import api_image_import
from glint.scripts.registry import Registry
from tests.httpserver import LocalServer
from tests.unit.api.support import PROJECT_A, Echo, TestClient

SCRIPTS = {"api_image_import": api_image_import, "echo": Echo}
GLANCE_DIRECT = {"method": {"name": "glance-direct"}}


def web_download(uri: str) -> dict[str, Any]:
    return {"method": {"name": "web-download", "uri": uri}}


@pytest.fixture
def glint(make_glint: Callable[..., app.Glint]) -> app.Glint:
    return make_glint(registry=Registry.of(SCRIPTS))


@pytest.fixture
def http_server() -> Iterator[LocalServer]:
    with LocalServer() as server:
        yield server


def import_(client: TestClient, image_id: str, body: dict[str, Any],
            headers: dict[str, str] | None = None) -> Any:
    return client.post(f"/v2/images/{image_id}/import", json=body,
                       headers={**PROJECT_A, **(headers or {})})


def image_tasks(client: TestClient, image_id: str) -> list[dict[str, Any]]:
    tasks: list[dict[str, Any]] = client.get(f"/v2/images/{image_id}/tasks",
                                             headers=PROJECT_A).json()["tasks"]
    return tasks
