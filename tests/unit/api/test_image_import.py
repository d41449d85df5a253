"""``POST /v2/images/{id}/import``: glance-direct and web-download as ``api_image_import`` tasks,
Glance's preconditions, the import lock, and Glance's revert on failure."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import pytest

from glint import app
from glint.api.app import create_app
from glint.db import models
from glint.images import states
from glint.imports import methods as imports
from glint.scripts.registry import Registry
from tests.httpserver import LocalServer
from tests.unit.api import import_support
from tests.unit.api.data_support import OCTET, BrokenStore, staged_files, stored
from tests.unit.api.import_support import GLANCE_DIRECT, SCRIPTS, image_tasks, import_, web_download
from tests.unit.api.support import (
    ADMIN,
    CTX_A,
    PROJECT_A,
    PROJECT_B,
    Echo,
    TestClient,
    add_image,
    error_of,
)

DATA = bytes(range(256)) * 1000

# The shared fixtures, which the tests below take by name.
glint = import_support.glint
http_server = import_support.http_server



def staged_image(client: TestClient, glint: app.Glint, **values: Any) -> models.Image:
    image = add_image(glint, CTX_A, **values)
    response = client.put(f"/v2/images/{image.id}/stage", content=DATA,
                          headers={**PROJECT_A, **OCTET})
    assert response.status_code == 204
    return image


def assert_activated(glint: app.Glint, image_id: str) -> None:
    image = glint.images.get(CTX_A, image_id)
    assert image.status == states.ACTIVE
    assert image.size == len(DATA)
    assert image.checksum == hashlib.md5(DATA).hexdigest()
    assert image.os_hash_value == hashlib.sha512(DATA).hexdigest()
    assert stored(glint) == {image.location: DATA}
    assert imports.LOCK not in image.extra_properties
    assert staged_files(glint) == []


# -- success ---------------------------------------------------------------------------------

def test_glance_direct_imports_the_staged_data(client: TestClient, glint: app.Glint) -> None:
    image = staged_image(client, glint)
    response = import_(client, image.id, GLANCE_DIRECT)
    assert response.status_code == 202
    assert response.content == b""
    assert_activated(glint, image.id)
    [task] = image_tasks(client, image.id)
    assert (task["type"], task["status"], task["image_id"]) == ("api_image_import", "success",
                                                                image.id)
    shown = client.get(f"/v2/tasks/{task['id']}", headers=PROJECT_A).json()
    assert shown["result"] == {"image_id": image.id}
    assert shown["input"] == {"image_id": image.id, "import_req": GLANCE_DIRECT,
                              "backend": ["memory"]}


def test_web_download_imports_the_url(client: TestClient, glint: app.Glint,
                                      http_server: LocalServer) -> None:
    image = add_image(glint, CTX_A)
    url = http_server.serve("/image.raw", DATA)
    assert import_(client, image.id, web_download(url)).status_code == 202
    assert_activated(glint, image.id)
    [task] = image_tasks(client, image.id)
    assert task["status"] == "success"


def test_stores_naming_the_one_store_are_accepted(client: TestClient, glint: app.Glint) -> None:
    image = staged_image(client, glint)
    body = {**GLANCE_DIRECT, "stores": ["memory"], "all_stores_must_succeed": True}
    assert import_(client, image.id, body).status_code == 202
    assert_activated(glint, image.id)


@pytest.mark.parametrize("extra", [{"all_stores": True}, {"all_stores": False}])
def test_all_stores_is_accepted(client: TestClient, glint: app.Glint,
                                extra: dict[str, Any]) -> None:
    image = staged_image(client, glint)
    assert import_(client, image.id, {**GLANCE_DIRECT, **extra}).status_code == 202


def test_store_header_naming_the_store(client: TestClient, glint: app.Glint) -> None:
    image = staged_image(client, glint)
    response = import_(client, image.id, GLANCE_DIRECT, {"X-Image-Meta-Store": "memory"})
    assert response.status_code == 202


# -- refusals: nothing changes ---------------------------------------------------------------

@pytest.mark.parametrize(("body", "words"), [
    ({}, "method"),
    ({"method": "glance-direct"}, "method"),
    ({"method": {"name": "copy-image"}}, "not enabled"),
    ({"method": {"name": "glance-download"}}, "not enabled"),
    ({"method": {"name": "web-download"}}, "uri"),
    ({"method": {"name": "web-download", "uri": "file:///etc/passwd"}}, "filtering"),
    ({"method": {"name": "web-download", "uri": "http://example.com/x"}}, "filtering"),
    ({**GLANCE_DIRECT, "stores": ["ceph"]}, "ceph"),
    ({**GLANCE_DIRECT, "stores": "memory"}, "list"),
    ({**GLANCE_DIRECT, "stores": ["memory"], "all_stores": True}, "all_stores"),
    ({**GLANCE_DIRECT, "all_stores": "yes"}, "boolean"),
    ({**GLANCE_DIRECT, "all_stores_must_succeed": False}, "all_stores_must_succeed"),
])
def test_bad_requests_are_400(client: TestClient, glint: app.Glint, body: dict[str, Any],
                              words: str) -> None:
    image = staged_image(client, glint)
    response = import_(client, image.id, body)
    assert response.status_code == 400
    assert words in error_of(response)["message"]
    assert_unchanged_staged(client, glint, image.id)


def test_body_and_header_stores_together_are_400(client: TestClient, glint: app.Glint) -> None:
    image = staged_image(client, glint)
    response = import_(client, image.id, {**GLANCE_DIRECT, "stores": ["memory"]},
                       {"X-Image-Meta-Store": "memory"})
    assert response.status_code == 400
    assert_unchanged_staged(client, glint, image.id)


def test_unknown_store_header_is_400(client: TestClient, glint: app.Glint) -> None:
    image = staged_image(client, glint)
    response = import_(client, image.id, GLANCE_DIRECT, {"X-Image-Meta-Store": "swift"})
    assert response.status_code == 400
    assert_unchanged_staged(client, glint, image.id)


def test_method_not_enabled_is_400(make_glint: Callable[..., app.Glint]) -> None:
    glint = make_glint(registry=Registry.of(SCRIPTS), enabled_import_methods=("glance-direct",))
    image = add_image(glint, CTX_A)
    with TestClient(create_app(glint)) as client:
        response = import_(client, image.id, web_download("http://127.0.0.1:1/x"))
    assert response.status_code == 400
    assert "web-download" in error_of(response)["message"]
    assert glint.images.get(CTX_A, image.id).status == states.QUEUED


def test_glance_direct_needs_staged_data(client: TestClient, glint: app.Glint) -> None:
    image = add_image(glint, CTX_A)
    response = import_(client, image.id, GLANCE_DIRECT)
    assert response.status_code == 409
    assert "staged" in error_of(response)["message"]
    assert glint.images.get(CTX_A, image.id).status == states.QUEUED
    assert image_tasks(client, image.id) == []


def test_web_download_needs_queued(client: TestClient, glint: app.Glint,
                                   http_server: LocalServer) -> None:
    image = staged_image(client, glint)
    response = import_(client, image.id, web_download(http_server.serve("/x", DATA)))
    assert response.status_code == 409
    assert "queued" in error_of(response)["message"]
    assert_unchanged_staged(client, glint, image.id)


def test_active_image_is_409(client: TestClient, glint: app.Glint) -> None:
    image = add_image(glint, CTX_A, b"data")
    response = import_(client, image.id, GLANCE_DIRECT)
    assert response.status_code == 409
    assert "active" in error_of(response)["message"]


@pytest.mark.parametrize("missing", ["disk_format", "container_format"])
def test_formats_must_be_set(client: TestClient, glint: app.Glint, missing: str) -> None:
    image = staged_image(client, glint, **{missing: None})
    response = import_(client, image.id, GLANCE_DIRECT)
    assert response.status_code == 409
    assert missing in error_of(response)["message"]
    assert_unchanged_staged(client, glint, image.id)


def test_other_project_is_403_or_404(client: TestClient, glint: app.Glint) -> None:
    public = staged_image(client, glint, visibility="public")
    private = staged_image(client, glint, visibility="private")
    assert import_(client, public.id, GLANCE_DIRECT, PROJECT_B).status_code == 403
    assert import_(client, private.id, GLANCE_DIRECT, PROJECT_B).status_code == 404
    assert_unchanged_staged(client, glint, public.id)
    assert import_(client, private.id, GLANCE_DIRECT, ADMIN).status_code == 202


def assert_unchanged_staged(client: TestClient, glint: app.Glint, image_id: str) -> None:
    image = glint.images.get(CTX_A, image_id)
    assert image.status == states.UPLOADING
    assert imports.LOCK not in image.extra_properties
    assert image_id in staged_files(glint)
    assert stored(glint) == {}
    assert image_tasks(client, image_id) == []


# -- the import lock -------------------------------------------------------------------------

def _task(glint: app.Glint, status: str) -> str:
    """A task row in ``status`` that nothing runs."""
    task = models.Task(id=f"{status[:4]}0000-0000-0000-0000-000000000000"[:36], type="echo",
                       status=status, owner="project-a", input={}, message="", context={})
    with glint.db.session() as session:
        session.add(task)
    return task.id


def _lock(glint: app.Glint, image_id: str, holder: str) -> None:
    glint.images.set_property_atomic(CTX_A, image_id, imports.LOCK, holder, lambda _: True)


def test_lock_held_by_a_live_task_is_409(client: TestClient, glint: app.Glint) -> None:
    image = staged_image(client, glint)
    holder = _task(glint, "processing")
    _lock(glint, image.id, holder)
    response = import_(client, image.id, GLANCE_DIRECT)
    assert response.status_code == 409
    assert "active import task" in error_of(response)["message"]
    got = glint.images.get(CTX_A, image.id)
    assert got.status == states.UPLOADING and got.extra_properties[imports.LOCK] == holder
    assert staged_files(glint) == [image.id]
    shown = client.get(f"/v2/images/{image.id}", headers=PROJECT_A).json()
    assert shown[imports.LOCK] == holder  # visible, as in Glance


@pytest.mark.parametrize("holder", ["failure", "success", "gone"])
def test_lock_of_a_finished_or_missing_task_is_taken_over(client: TestClient, glint: app.Glint,
                                                          holder: str) -> None:
    image = staged_image(client, glint)
    task_id = "99999999-9999-9999-9999-999999999999" if holder == "gone" else _task(glint, holder)
    _lock(glint, image.id, task_id)
    assert import_(client, image.id, GLANCE_DIRECT).status_code == 202
    assert_activated(glint, image.id)


def test_a_task_created_directly_does_not_hold_the_lock(client: TestClient,
                                                        glint: app.Glint) -> None:
    image = staged_image(client, glint)
    response = client.post("/v2/tasks", headers=ADMIN, json={
        "type": "api_image_import", "input": {"image_id": image.id, "import_req": GLANCE_DIRECT,
                                              "backend": None}})
    assert response.status_code == 201
    task = client.get(f"/v2/tasks/{response.json()['id']}", headers=ADMIN).json()
    assert task["status"] == "failure"
    assert "not locked for this task" in task["message"]
    got = glint.images.get(CTX_A, image.id)
    assert got.status == states.UPLOADING and staged_files(glint) == [image.id]


def test_task_creation_failure_releases_the_lock(make_glint: Callable[..., app.Glint]) -> None:
    glint = make_glint(registry=Registry.of({"echo": Echo}))  # no api_image_import script
    image = add_image(glint, CTX_A)
    with TestClient(create_app(glint)) as client:
        client.put(f"/v2/images/{image.id}/stage", content=DATA, headers={**PROJECT_A, **OCTET})
        assert import_(client, image.id, GLANCE_DIRECT).status_code == 400
    assert imports.LOCK not in glint.images.get(CTX_A, image.id).extra_properties


# -- failures: Glance's revert ---------------------------------------------------------------

def test_web_download_failure_reverts_to_queued(client: TestClient, glint: app.Glint,
                                                http_server: LocalServer) -> None:
    image = add_image(glint, CTX_A)
    url = http_server.status("/missing", 404)
    assert import_(client, image.id, web_download(url)).status_code == 202
    [task] = image_tasks(client, image.id)
    assert task["status"] == "failure"
    assert "404" in task["message"]
    got = glint.images.get(CTX_A, image.id)
    assert (got.status, got.size, got.location) == (states.QUEUED, None, None)
    assert imports.LOCK not in got.extra_properties
    assert stored(glint) == {}
    # The image can be imported again.
    assert import_(client, image.id, web_download(http_server.serve("/ok", DATA))).status_code \
        == 202
    assert_activated(glint, image.id)


def test_web_download_short_body_reverts(client: TestClient, glint: app.Glint,
                                         http_server: LocalServer) -> None:
    image = add_image(glint, CTX_A)
    url = http_server.serve("/liar", DATA, content_length=len(DATA) + 10)
    import_(client, image.id, web_download(url))
    [task] = image_tasks(client, image.id)
    assert task["status"] == "failure"
    assert glint.images.get(CTX_A, image.id).status == states.QUEUED
    assert stored(glint) == {}


def test_glance_direct_failure_reverts_and_drops_the_staged_data(
        make_glint: Callable[..., app.Glint]) -> None:
    glint = make_glint(registry=Registry.of(SCRIPTS), store=BrokenStore())
    with TestClient(create_app(glint)) as client:
        image = add_image(glint, CTX_A)
        big = DATA * 8  # past BrokenStore's 1 MiB
        client.put(f"/v2/images/{image.id}/stage", content=big, headers={**PROJECT_A, **OCTET})
        assert import_(client, image.id, GLANCE_DIRECT).status_code == 202
        [task] = image_tasks(client, image.id)
    assert task["status"] == "failure"
    assert "No space left on device" in task["message"]
    got = glint.images.get(CTX_A, image.id)
    assert (got.status, got.size, got.location) == (states.QUEUED, None, None)
    assert imports.LOCK not in got.extra_properties
    assert staged_files(glint) == []
    assert stored(glint) == {}


def test_staged_data_gone_fails_the_task(client: TestClient, glint: app.Glint) -> None:
    image = staged_image(client, glint)
    glint.images.staging.delete(image.id)
    assert import_(client, image.id, GLANCE_DIRECT).status_code == 202
    [task] = image_tasks(client, image.id)
    assert task["status"] == "failure"
    assert "no staged data" in task["message"]
    assert glint.images.get(CTX_A, image.id).status == states.QUEUED
