"""``GET /openapi.json``: served without identity, and in step with the routes and responses."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from typing import Any

import jsonschema
import pytest

from glint import app
from glint.api import openapi
from glint.api.app import create_app
from glint.scripts import api_image_import
from glint.scripts.registry import Registry
from tests.unit.api import metadefs_support, openapi_support
from tests.unit.api.data_support import OCTET
from tests.unit.api.support import (
    ADMIN,
    CTX_A,
    PROJECT_A,
    PROJECT_B,
    Echo,
    Fail,
    TestClient,
    add_image,
)

DATA = bytes(range(256)) * 8
PATCH_21 = {"Content-Type": "application/openstack-images-v2.1-json-patch"}
PATCH_20 = {"Content-Type": "application/openstack-images-v2.0-json-patch"}


@pytest.fixture
def glint(make_glint: Callable[..., app.Glint]) -> app.Glint:
    scripts = {"echo": Echo, "fail": Fail, "api_image_import": api_image_import}
    return make_glint(registry=Registry.of(scripts))


@pytest.fixture
def doc(client: TestClient) -> dict[str, Any]:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


def test_every_route_is_documented_and_every_operation_served(
        glint: app.Glint, doc: dict[str, Any]) -> None:
    served = openapi_support.served(create_app(glint).routes)
    documented = openapi_support.documented(doc)
    assert served - documented == set(), "served but not documented"
    assert documented - served == set(), "documented but not served"


def test_served_without_identity_and_names_this_deployment(
        make_client: Callable[..., TestClient]) -> None:
    client = make_client(default_project_id=None, disk_formats=("raw", "qcow2"))
    response = client.get("/openapi.json", headers={"X-Identity-Status": "Invalid"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-openstack-request-id"].startswith("req-")
    doc = response.json()
    assert doc["openapi"].startswith("3.1")
    schemas = doc["components"]["schemas"]
    assert schemas["Image"]["properties"]["disk_format"]["enum"] == [None, "raw", "qcow2"]
    assert schemas["Task"]["properties"]["type"]["enum"] == ["echo"]
    assert client.get("/v2/images").status_code == 401


def test_is_a_valid_openapi_3_1_document(doc: dict[str, Any]) -> None:
    # The OpenAPI 3.1 meta-schema, as schemathesis ships it.
    from schemathesis.specs.openapi.definitions import OPENAPI_31

    jsonschema.Draft202012Validator(OPENAPI_31).validate(doc)
    operation_ids = [operation["operationId"] for operation in openapi.operations(doc)]
    assert len(operation_ids) == len(set(operation_ids))


def test_every_operation_documents_its_shared_responses(doc: dict[str, Any]) -> None:
    for operation in openapi.operations(doc):
        responses = operation["responses"]
        assert "400" in responses and openapi.REQUEST_ID in operation["parameters"]
        assert ("401" in responses) == (operation.get("security") != [])
        for response in responses.values():
            headers = openapi_support.resolve(doc, response)["headers"]
            assert openapi.REQUEST_ID_HEADER in headers, operation["operationId"]


def test_schema_endpoints_match_the_components(client: TestClient, doc: dict[str, Any]) -> None:
    image = client.get("/v2/schemas/image", headers=PROJECT_A).json()
    assert doc["components"]["schemas"]["Image"]["properties"] == image["properties"]
    task = client.get("/v2/schemas/task", headers=PROJECT_A).json()
    assert doc["components"]["schemas"]["Task"]["properties"] == task["properties"]


def test_representative_responses_conform(client: TestClient, glint: app.Glint,
                                          doc: dict[str, Any]) -> None:
    """A tour of every operation, each response checked against its documented one."""
    toured: set[tuple[str, str]] = set()

    def call(method: str, path: str, headers: dict[str, str] = PROJECT_A, **kw: Any) -> Any:
        response = client.request(method, path, headers=headers, **kw)
        openapi_support.check(doc, method, path.split("?")[0], response)
        toured.add((method.lower(), openapi_support.template_of(doc, path.split("?")[0])))
        return response

    call("GET", "/", headers={})
    call("GET", "/versions", headers={})
    call("GET", "/openapi.json", headers={})
    call("GET", "/healthcheck", headers={})  # 503 here: the test database has no revision
    call("HEAD", "/healthcheck", headers={})
    call("GET", "/healthcheck", headers={**ADMIN, "Accept": "application/json"})
    for name in ("image", "images", "member", "members", "task", "tasks"):
        call("GET", f"/v2/schemas/{name}")

    task = call("POST", "/v2/tasks", json={"type": "echo", "input": {"n": 1}}).json()
    failed = call("POST", "/v2/tasks", json={"type": "fail", "input": {}}).json()
    call("POST", "/v2/tasks", json={"type": "nope", "input": {}})
    assert call("GET", "/v2/tasks?limit=1").json()["next"]
    call("GET", "/v2/tasks?sort_key=bogus")
    call("GET", f"/v2/tasks/{task['id']}")
    assert call("GET", f"/v2/tasks/{failed['id']}").json()["status"] == "failure"
    call("GET", "/v2/tasks/not-a-uuid")
    call("DELETE", f"/v2/tasks/{task['id']}")
    call("POST", f"/v2/tasks/{task['id']}/actions/cancel")

    created = call("POST", "/v2/images", json={"name": "x", "disk_format": "raw",
                                               "container_format": "bare", "os_distro": "d"})
    image_id = created.json()["id"]
    call("POST", "/v2/images", json={"id": image_id})
    call("POST", "/v2/images", json={"status": "active"})
    call("POST", "/v2/images", json={"visibility": "public"})
    call("GET", "/v2/images?limit=1&sort=name:asc")
    call("GET", "/v2/images?size_min=x")
    call("GET", f"/v2/images/{image_id}")
    call("GET", f"/v2/images/{uuid.uuid4()}")
    call("PATCH", f"/v2/images/{image_id}", headers={**PROJECT_A, **PATCH_21},
         json=[{"op": "replace", "path": "/name", "value": "y"}])
    call("PATCH", f"/v2/images/{image_id}", headers={**PROJECT_A, **PATCH_20},
         json=[{"add": "/hw_disk_bus", "value": "scsi"}])
    call("PATCH", f"/v2/images/{image_id}", headers={**PROJECT_A, **PATCH_20},
         json=[{"add": "/hw_disk_bus", "value": "scsi"}])
    call("PATCH", f"/v2/images/{image_id}", json=[])
    call("PUT", f"/v2/images/{image_id}/tags/blue")
    call("DELETE", f"/v2/images/{image_id}/tags/red")
    call("DELETE", f"/v2/images/{image_id}/tags/blue")
    call("GET", f"/v2/images/{image_id}/file")
    call("PUT", f"/v2/images/{image_id}/file", headers={**PROJECT_A, **OCTET}, content=DATA)
    call("PUT", f"/v2/images/{image_id}/file", headers={**PROJECT_A, **OCTET}, content=DATA)
    call("PUT", f"/v2/images/{image_id}/file", content=DATA)
    whole = call("GET", f"/v2/images/{image_id}/file")
    assert whole.headers["content-md5"] == hashlib.md5(DATA).hexdigest()
    call("GET", f"/v2/images/{image_id}/file", headers={**PROJECT_A, "Range": "bytes=2-5"})
    call("GET", f"/v2/images/{image_id}/file", headers={**PROJECT_A, "Range": "bytes=9999-"})
    call("POST", f"/v2/images/{image_id}/actions/deactivate")
    call("GET", f"/v2/images/{image_id}/file", headers=PROJECT_B)
    call("POST", f"/v2/images/{image_id}/actions/reactivate")
    call("POST", f"/v2/images/{image_id}/actions/reactivate", headers=PROJECT_B)

    call("GET", f"/v2/images/{image_id}/members")
    member = call("POST", f"/v2/images/{image_id}/members", json={"member": "project-b"})
    assert member.json()["status"] == "pending"
    call("POST", f"/v2/images/{image_id}/members", json={"member": "project-b"})
    call("GET", f"/v2/images/{image_id}/members/project-b")
    call("PUT", f"/v2/images/{image_id}/members/project-b", headers=PROJECT_B,
         json={"status": "accepted"})
    call("PUT", f"/v2/images/{image_id}/members/project-b", json={"status": "maybe"})
    call("DELETE", f"/v2/images/{image_id}/members/project-b")

    staged = add_image(glint, CTX_A)
    call("PUT", f"/v2/images/{staged.id}/stage", headers={**PROJECT_A, **OCTET}, content=DATA)
    call("POST", f"/v2/images/{staged.id}/import", json={"method": {"name": "glance-direct"}})
    call("POST", f"/v2/images/{staged.id}/import", json={"method": {"name": "glance-direct"}})
    call("POST", f"/v2/images/{staged.id}/import", json={"method": {"name": "copy-image"}})
    assert call("GET", f"/v2/images/{staged.id}/tasks").json()["tasks"]

    call("GET", "/v2/info/import")
    call("GET", "/v2/info/stores")
    call("GET", "/v2/info/stores/detail", headers=ADMIN)
    call("DELETE", f"/v2/stores/memory/{image_id}", headers=ADMIN)  # 404: one store
    call("GET", "/v2/info/usage")
    protected = add_image(glint, CTX_A, protected=True)
    call("DELETE", f"/v2/images/{protected.id}")
    call("DELETE", f"/v2/images/{image_id}", headers=ADMIN)
    metadefs_support.tour(call, glint)
    call("GET", "/dashboard", headers=ADMIN)
    call("GET", f"/dashboard?task={task['id']}", headers=ADMIN)
    call("GET", "/dashboard?task=nope", headers=ADMIN)
    call("GET", "/dashboard")  # 403: not an admin
    assert call("GET", "/dashboard/data", headers=ADMIN).json()["recent"]
    assert call("GET", f"/dashboard/data?task={failed['id']}",
                headers=ADMIN).json()["task"]["status"] == "failure"
    call("GET", "/dashboard/data")
    assert openapi_support.documented(doc) - toured == set()
