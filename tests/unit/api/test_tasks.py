"""The Tasks API: create, show, list with paging, isolation, 405s, and the task schemas."""

from __future__ import annotations

import re
import uuid
from typing import Any

import jsonschema
import pytest

from glint import app
from tests.unit.api.support import ADMIN, PROJECT_A, PROJECT_B, TestClient, error_of

ISOTIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def create(client: TestClient, headers: dict[str, str] = PROJECT_A, task_type: str = "echo",
           task_input: dict[str, Any] | None = None) -> dict[str, Any]:
    response = client.post("/v2/tasks", json={"type": task_type, "input": task_input or {}},
                           headers=headers)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def test_create_returns_201_the_full_task_and_its_location(client: TestClient) -> None:
    response = client.post("/v2/tasks", json={"type": "echo", "input": {"n": 1}},
                           headers=PROJECT_A)
    assert response.status_code == 201
    task = response.json()
    assert response.headers["location"] == f"/v2/tasks/{task['id']}"
    assert uuid.UUID(task["id"])
    assert task["type"] == "echo"
    assert task["status"] == "pending"
    assert task["input"] == {"n": 1}
    assert task["result"] is None
    assert task["message"] == ""
    assert task["owner"] == "project-a"
    assert task["user_id"] == "user-a"
    assert task["request_id"] == response.headers["x-openstack-request-id"]
    assert task["self"] == f"/v2/tasks/{task['id']}"
    assert task["schema"] == "/v2/schemas/task"
    assert ISOTIME.match(task["created_at"]) and ISOTIME.match(task["updated_at"])
    assert "expires_at" not in task  # omitted until the task ends
    assert "image_id" not in task  # omitted while unset


def test_show_a_finished_task(client: TestClient) -> None:
    task_id = create(client, task_input={"n": 2})["id"]
    response = client.get(f"/v2/tasks/{task_id}", headers=PROJECT_A)
    assert response.status_code == 200
    task = response.json()
    assert task["status"] == "success"
    assert task["result"] == {"echo": {"n": 2}}
    assert ISOTIME.match(task["expires_at"])


def test_show_a_failed_task_has_its_message(client: TestClient) -> None:
    task_id = create(client, task_type="fail")["id"]
    task = client.get(f"/v2/tasks/{task_id}", headers=PROJECT_A).json()
    assert task["status"] == "failure"
    assert task["message"] == "it failed on purpose"
    assert task["result"] is None


def test_show_uppercase_id_is_the_same_task(client: TestClient) -> None:
    task_id = create(client)["id"]
    assert client.get(f"/v2/tasks/{task_id.upper()}", headers=PROJECT_A).json()["id"] == task_id


@pytest.mark.parametrize(("body", "words"), [
    ({"input": {}}, "'type' is required"),
    ({"type": "echo"}, "'input' is required"),
    ({"type": "echo", "input": {}, "owner": "x"}, "owner"),
    ({"type": "nope", "input": {}}, "echo, fail"),
    ({"type": "echo", "input": "text"}, "input"),
])
def test_create_validation(client: TestClient, body: dict[str, Any], words: str) -> None:
    response = client.post("/v2/tasks", json=body, headers=PROJECT_A)
    assert response.status_code == 400
    assert words in error_of(response)["message"]


def test_unknown_task_is_404(client: TestClient) -> None:
    response = client.get(f"/v2/tasks/{uuid.uuid4()}", headers=PROJECT_A)
    assert response.status_code == 404
    assert "not found" in error_of(response)["message"]


def test_expired_task_is_404(client: TestClient, glint: app.Glint) -> None:
    from glint.db import models

    task_id = create(client)["id"]
    with glint.db.session() as session:
        row = session.get(models.Task, task_id)
        assert row is not None
        row.expires_at = models.utcnow().replace(year=2000)
    assert client.get(f"/v2/tasks/{task_id}", headers=PROJECT_A).status_code == 404
    assert client.get("/v2/tasks", headers=PROJECT_A).json()["tasks"] == []


def test_delete_is_405_allow_get(client: TestClient) -> None:
    task_id = create(client)["id"]
    response = client.delete(f"/v2/tasks/{task_id}", headers=PROJECT_A)
    assert response.status_code == 405
    assert response.headers["allow"] == "GET"
    assert "auto deleted" in error_of(response)["message"]
    assert client.get(f"/v2/tasks/{task_id}", headers=PROJECT_A).status_code == 200


def test_other_methods_are_405_with_allow(client: TestClient) -> None:
    task_id = create(client)["id"]
    response = client.patch(f"/v2/tasks/{task_id}", headers=PROJECT_A)
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, DELETE"
    assert client.delete("/v2/tasks", headers=PROJECT_A).headers["allow"] == "GET, POST"


def test_projects_are_isolated_and_admin_sees_all(client: TestClient) -> None:
    mine = create(client, PROJECT_A)["id"]
    theirs = create(client, PROJECT_B)["id"]
    response = client.get(f"/v2/tasks/{mine}", headers=PROJECT_B)
    assert response.status_code == 404
    error_of(response)
    assert [t["id"] for t in client.get("/v2/tasks", headers=PROJECT_B).json()["tasks"]] == [
        theirs]
    assert [t["id"] for t in client.get("/v2/tasks", headers=PROJECT_A).json()["tasks"]] == [
        mine]
    assert client.get(f"/v2/tasks/{mine}", headers=ADMIN).status_code == 200
    assert client.get(f"/v2/tasks/{theirs}", headers=ADMIN).status_code == 200
    listed = {t["id"] for t in client.get("/v2/tasks", headers=ADMIN).json()["tasks"]}
    assert listed == {mine, theirs}


def test_list_items_are_stubs(client: TestClient) -> None:
    create(client)
    body = client.get("/v2/tasks", headers=PROJECT_A).json()
    assert body["schema"] == "/v2/schemas/tasks"
    assert body["first"] == "/v2/tasks"
    assert "next" not in body
    (stub,) = body["tasks"]
    assert set(stub) == {"id", "type", "status", "owner", "created_at", "updated_at", "self",
                         "schema", "expires_at"}


def test_list_filters(client: TestClient) -> None:
    ok = create(client)["id"]
    failed = create(client, task_type="fail")["id"]
    def ids(query: str) -> list[str]:
        return [t["id"] for t in client.get(f"/v2/tasks?{query}", headers=PROJECT_A).json()[
            "tasks"]]
    assert ids("status=success") == [ok]
    assert ids("status=failure") == [failed]
    assert ids("type=fail") == [failed]
    assert ids("status=pending") == []
    assert sorted(ids("unknown=ignored")) == sorted([ok, failed])


def test_limit_is_capped_and_defaulted(make_client: Any) -> None:
    client = make_client(limit_param_default=2, api_limit_max=3)
    for _ in range(4):
        create(client)
    assert len(client.get("/v2/tasks", headers=PROJECT_A).json()["tasks"]) == 2
    assert len(client.get("/v2/tasks?limit=100", headers=PROJECT_A).json()["tasks"]) == 3
    body = client.get("/v2/tasks?limit=0", headers=PROJECT_A).json()
    assert body["tasks"] == [] and "next" not in body


def test_unknown_marker_is_400(client: TestClient) -> None:
    theirs = create(client, PROJECT_B)["id"]
    response = client.get(f"/v2/tasks?marker={theirs}", headers=PROJECT_A)
    assert response.status_code == 400
    assert "marker" in error_of(response)["message"]


def page_through(client: TestClient, first: str) -> tuple[list[str], list[str]]:
    """Follow ``next`` from ``first``; return the ids seen and the pages' urls."""
    ids: list[str] = []
    urls = [first]
    while True:
        body = client.get(urls[-1], headers=PROJECT_A).json()
        ids += [t["id"] for t in body["tasks"]]
        if "next" not in body:
            return ids, urls
        assert len(urls) < 10
        urls.append(body["next"])


@pytest.mark.parametrize("sort_key", ["created_at", "status", "type", "id"])
def test_paging_through_three_pages_both_ways(client: TestClient, sort_key: str) -> None:
    created = [create(client, task_type="fail" if i % 3 == 0 else "echo")["id"]
               for i in range(7)]
    pages: dict[str, list[str]] = {}
    for direction in ("asc", "desc"):
        whole = client.get(f"/v2/tasks?sort_key={sort_key}&sort_dir={direction}&limit=100",
                           headers=PROJECT_A).json()["tasks"]
        ids, urls = page_through(client, f"/v2/tasks?sort_key={sort_key}&sort_dir={direction}"
                                 "&limit=3")
        assert len(urls) == 3
        assert urls[1].startswith(f"/v2/tasks?sort_key={sort_key}&sort_dir={direction}&limit=3"
                                  "&marker=")
        assert ids == [t["id"] for t in whole]
        assert sorted(ids) == sorted(created)
        keys = [t[sort_key] for t in whole]
        assert keys == sorted(keys, reverse=direction == "desc")
        pages[direction] = ids
    assert pages["asc"] == pages["desc"][::-1]


def test_first_keeps_the_query_without_the_marker(client: TestClient) -> None:
    tasks = [create(client)["id"] for _ in range(3)]
    body = client.get(f"/v2/tasks?limit=1&marker={tasks[2]}&status=success",
                      headers=PROJECT_A).json()
    assert body["first"] == "/v2/tasks?limit=1&status=success"
    assert body["next"] == f"/v2/tasks?limit=1&status=success&marker={tasks[1]}"


def test_task_schemas_follow_glance_and_list_installed_types(client: TestClient) -> None:
    task = client.get("/v2/schemas/task").json()
    assert task["name"] == "task"
    assert "additionalProperties" not in task and "links" not in task
    assert task["properties"]["type"]["enum"] == ["echo", "fail"]
    assert task["properties"]["message"]["type"] == "string"
    assert task["properties"]["expires_at"]["type"] == ["null", "string"]
    tasks = client.get("/v2/schemas/tasks").json()
    item = tasks["properties"]["tasks"]["items"]
    assert tasks["name"] == "tasks"
    assert tasks["links"] == [{"rel": "describedby", "href": "{schema}"}]
    assert set(task["properties"]) - set(item["properties"]) == {
        "input", "result", "message", "progress"}


def test_real_tasks_validate_against_the_served_schemas(client: TestClient) -> None:
    task_schema = client.get("/v2/schemas/task").json()
    strict = {**task_schema, "additionalProperties": False}  # nothing outside the schema either
    for task_type in ("echo", "fail"):
        created = create(client, task_type=task_type, task_input={"k": "v"})
        jsonschema.validate(created, strict)
        jsonschema.validate(client.get(f"/v2/tasks/{created['id']}", headers=PROJECT_A).json(),
                            strict)
    listing = client.get("/v2/tasks", headers=PROJECT_A).json()
    jsonschema.validate(listing, client.get("/v2/schemas/tasks").json())
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**created, "type": "other"}, task_schema)


LEASE_FIELDS = {"attempts", "max_attempts", "lease_owner", "lease_expires_at"}


def test_admins_see_attempts_and_the_lease_and_others_never_do(client: TestClient,
                                                                glint: app.Glint) -> None:
    import datetime

    from glint.db import models

    task_id = create(client, task_input={"n": 3})["id"]
    with glint.db.session() as session:  # as a worker holds it mid-run
        row = session.get(models.Task, task_id)
        assert row is not None
        row.status, row.attempts, row.lease_owner = "processing", 2, "node-1:4242:ab12cd34"
        row.lease_expires_at = datetime.datetime(2030, 1, 2, 3, 4, 5)
    schema = client.get("/v2/schemas/task").json()
    strict = {**schema, "additionalProperties": False}
    shown = client.get(f"/v2/tasks/{task_id}", headers=ADMIN).json()
    assert {key: shown[key] for key in LEASE_FIELDS} == {
        "attempts": 2, "max_attempts": 3, "lease_owner": "node-1:4242:ab12cd34",
        "lease_expires_at": "2030-01-02T03:04:05Z"}
    jsonschema.validate(shown, strict)
    plain = client.get(f"/v2/tasks/{task_id}", headers=PROJECT_A).json()  # its project's member
    assert plain["status"] == "processing" and not LEASE_FIELDS & set(plain)
    jsonschema.validate(plain, strict)
    assert not LEASE_FIELDS & set(create(client, ADMIN))  # create answers the plain task
    finished = client.get(f"/v2/tasks/{create(client, ADMIN)['id']}", headers=ADMIN).json()
    assert finished["lease_owner"] == glint.runner.owner  # the last runner, its lease over
    assert (finished["attempts"], finished["lease_expires_at"]) == (1, None)
    jsonschema.validate(finished, strict)
