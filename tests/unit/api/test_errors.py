"""Error bodies, the request id on every response, and requests that must not become 500s."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest

from glint import app, errors
from glint.api import errors as api_errors
from tests.unit.api.support import PROJECT_A, TestClient, error_of

REQUEST_ID = re.compile(r"^req-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def test_unknown_route_is_a_json_404_with_a_request_id(client: TestClient) -> None:
    response = client.get("/v2/nothing-here")
    assert response.status_code == 404
    assert error_of(response)["title"] == "Not Found"
    assert REQUEST_ID.match(response.headers["x-openstack-request-id"])


def test_every_response_gets_a_fresh_request_id(client: TestClient) -> None:
    ids = {client.get(path).headers["x-openstack-request-id"]
           for path in ("/versions", "/v2/tasks", "/v2/tasks", "/missing")}
    assert len(ids) == 4
    assert all(REQUEST_ID.match(i) for i in ids)


def test_incoming_request_id_is_reused_with_its_prefix(client: TestClient) -> None:
    response = client.get("/v2/tasks", headers={"X-Openstack-Request-ID": "req-abc"})
    assert response.headers["x-openstack-request-id"] == "req-abc"
    response = client.get("/missing", headers={"X-Openstack-Request-ID": "abc"})
    assert response.status_code == 404
    assert response.headers["x-openstack-request-id"] == "req-abc"


def test_request_id_is_recorded_on_the_task(client: TestClient) -> None:
    response = client.post("/v2/tasks", json={"type": "echo", "input": {}},
                           headers={"X-Openstack-Request-ID": "req-from-client"})
    assert response.json()["request_id"] == "req-from-client"


def test_overlong_request_id_is_refused_with_a_new_one(client: TestClient) -> None:
    response = client.get("/v2/tasks", headers={"X-Openstack-Request-ID": "x" * 61})
    assert response.status_code == 400
    assert "x-openstack-request-id" in error_of(response)["message"]
    assert REQUEST_ID.match(response.headers["x-openstack-request-id"])


def test_405_names_the_allowed_methods(client: TestClient) -> None:
    response = client.put("/v2/tasks")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, POST"
    assert "PUT" in error_of(response)["message"]
    assert "x-openstack-request-id" in response.headers


def test_unexpected_error_is_a_logged_500_with_a_request_id(
        glint: app.Glint, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    from glint.api.app import create_app

    def explode(*args: Any) -> None:
        raise RuntimeError("secret detail")

    monkeypatch.setattr(glint.tasks, "list", explode)
    with TestClient(create_app(glint), raise_server_exceptions=False) as client:
        response = client.get("/v2/tasks", headers={"X-Openstack-Request-ID": "req-boom"})
    assert response.status_code == 500
    error = error_of(response)
    assert "secret" not in error["message"]
    assert response.headers["x-openstack-request-id"] == "req-boom"
    assert any("req-boom" in r.getMessage() and r.exc_info for r in caplog.records)


@pytest.mark.parametrize(("exc", "status", "header"), [
    (errors.BadRequest("m"), 400, None),
    (errors.Unauthorized("m"), 401, None),
    (errors.Forbidden("m"), 403, None),
    (errors.NotFound("m"), 404, None),
    (errors.MethodNotAllowed("m", allow="GET"), 405, ("allow", "GET")),
    (errors.Conflict("m"), 409, None),
    (errors.Gone("m"), 410, None),
    (errors.TooLarge("m"), 413, None),
    (errors.UnsupportedMediaType("m", accept_patch="application/x"), 415,
     ("accept-patch", "application/x")),
    (errors.RangeNotSatisfiable("m", size=10), 416, ("content-range", "bytes */10")),
])
def test_the_error_table(exc: errors.GlintError, status: int,
                         header: tuple[str, str] | None) -> None:
    response = api_errors.from_error(exc)
    assert response.status_code == status
    assert "www-authenticate" not in response.headers
    if header is not None:
        assert response.headers[header[0]] == header[1]


def test_unmapped_glint_errors_are_not_given_a_status() -> None:
    assert api_errors.status_of(errors.StoreError("gone")) is None
    with pytest.raises(errors.StoreError):
        api_errors.from_error(errors.StoreError("gone"))


@pytest.mark.parametrize("path", [
    "/v2/tasks?limit=-1", "/v2/tasks?limit=ten", "/v2/tasks?limit=" + "9" * 5000,
    "/v2/tasks?marker=not-a-uuid", f"/v2/tasks?marker={uuid.uuid4()}",
    "/v2/tasks?sort_key=input", "/v2/tasks?sort_dir=up", "/v2/tasks?status=done",
    "/v2/tasks?type=nope", "/v2/tasks?status=%00",
    "/v2/images?limit=1.5", "/v2/images?marker=x", "/v2/images?sort_key=location",
    "/v2/images?sort=name:sideways", "/v2/images?sort=name&sort_key=size",
    "/v2/images?sort_key=name&sort_key=size&sort_dir=asc&sort_dir=asc&sort_dir=desc",
    "/v2/images?visibility=everyone", "/v2/images?member_status=maybe",
    "/v2/images?os_hidden=yes", "/v2/images?protected=1", "/v2/images?size_min=big",
    "/v2/images?size_max=" + "9" * 30, "/v2/images?min_ram=lots",
    "/v2/images?created_at=gt:yesterday", "/v2/images?updated_at=between:2020-01-01",
    "/v2/images?created_at=lt:0001-01-01T00:00:00%2B05:00",
    "/v2/images?name=like:foo", '/v2/images?name=in:"a,b', '/v2/images?name=in:"a"b',
    "/v2/images?changes-since=2020-01-01", "/v2/images?foo=%00",
])
def test_malformed_query_parameters_are_400s(client: TestClient, path: str) -> None:
    response = client.get(path, headers=PROJECT_A)
    assert response.status_code == 400, response.text
    error_of(response)


@pytest.mark.parametrize("body", [
    b"", b"{", b"[1, 2]", b'"text"', b"null", b'{"type": "echo", "input": NaN}',
    b"\xff\xfe{", b"[" * 100_000, b'{"type": "echo", "input": {"a": "\\u0000"}}',
    b'{"type": "echo", "input": {"a": "\\ud800"}}',
    b'{"type": "echo", "input": ' + b'{"a": ' * 40 + b"1" + b"}" * 41,
    b'{"type": ["echo"], "input": {}}', b'{"type": "echo", "input": null}',
    b'{"type": "echo", "input": []}',
])
def test_malformed_bodies_are_400s(client: TestClient, body: bytes) -> None:
    response = client.post("/v2/tasks", content=body,
                           headers={"Content-Type": "application/json"})
    assert response.status_code == 400, response.text
    error_of(response)


def test_oversized_body_is_413(client: TestClient) -> None:
    body = b'{"type": "echo", "input": {"a": "' + b"x" * (1024 * 1024) + b'"}}'
    response = client.post("/v2/tasks", content=body)
    assert response.status_code == 413
    error_of(response)


@pytest.mark.parametrize("path", ["/v2/tasks/not-a-uuid", "/v2/images/not-a-uuid",
                                  "/v2/images/" + "a" * 5000, "/v2/images/x/file",
                                  "/v2/images/x/tasks"])
def test_non_uuid_ids_are_404s(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404
    error_of(response)
