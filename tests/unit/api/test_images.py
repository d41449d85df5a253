"""The Images API read path: list (filters, paging, visibility), show, delete, image tasks."""

from __future__ import annotations

import datetime
import re
import uuid
from typing import Any

import jsonschema
import pytest

from glint import app
from glint.context import RequestContext
from glint.db import models
from tests.unit.api.support import (
    ADMIN,
    CTX_A,
    CTX_B,
    PROJECT_A,
    PROJECT_B,
    TestClient,
    add_image,
    error_of,
)

ISOTIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def listed(client: TestClient, query: str = "", headers: dict[str, str] = PROJECT_A) -> list[str]:
    response = client.get(f"/v2/images?{query}", headers=headers)
    assert response.status_code == 200, response.text
    return [i["id"] for i in response.json()["images"]]


def share(glint: app.Glint, image_id: str, member: str, status: str = "accepted") -> None:
    with glint.db.session() as session:
        session.add(models.ImageMember(image_id=image_id, member=member, status=status))


def test_show_an_image(client: TestClient, glint: app.Glint) -> None:
    image = add_image(glint, CTX_A, name="cirros", tags=["b", "a"], os_distro="cirros")
    response = client.get(f"/v2/images/{image.id}", headers=PROJECT_A)
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == image.id
    assert body["name"] == "cirros"
    assert body["status"] == "queued"
    assert body["visibility"] == "shared"
    assert body["owner"] == "project-a"
    assert body["checksum"] is None and body["size"] is None
    assert body["tags"] == ["a", "b"]
    assert body["os_distro"] == "cirros"
    assert body["self"] == f"/v2/images/{image.id}"
    assert body["file"] == f"/v2/images/{image.id}/file"
    assert body["schema"] == "/v2/schemas/image"
    assert ISOTIME.match(body["created_at"]) and ISOTIME.match(body["updated_at"])
    assert "location" not in body


def test_unknown_image_is_404(client: TestClient) -> None:
    response = client.get(f"/v2/images/{uuid.uuid4()}", headers=PROJECT_A)
    assert response.status_code == 404
    error_of(response)


def test_projects_are_isolated_and_admin_sees_all(client: TestClient, glint: app.Glint) -> None:
    mine = add_image(glint, CTX_A, visibility="private").id
    theirs = add_image(glint, CTX_B).id
    assert client.get(f"/v2/images/{mine}", headers=PROJECT_B).status_code == 404
    assert client.get(f"/v2/images/{theirs}", headers=PROJECT_A).status_code == 404
    assert listed(client, headers=PROJECT_A) == [mine]
    assert listed(client, headers=PROJECT_B) == [theirs]
    assert client.get(f"/v2/images/{mine}", headers=ADMIN).status_code == 200
    assert set(listed(client, headers=ADMIN)) == {mine, theirs}
    assert client.get(f"/v2/images/{mine}/tasks", headers=PROJECT_B).status_code == 404


def test_visibility_rules_of_the_list(client: TestClient, glint: app.Glint) -> None:
    public = add_image(glint, CTX_B, visibility="public").id
    community = add_image(glint, CTX_B, visibility="community").id
    shared_accepted = add_image(glint, CTX_B).id
    shared_pending = add_image(glint, CTX_B).id
    add_image(glint, CTX_B, visibility="private")
    own_community = add_image(glint, CTX_A, visibility="community").id
    share(glint, shared_accepted, "project-a")
    share(glint, shared_pending, "project-a", status="pending")
    assert set(listed(client)) == {public, shared_accepted, own_community}
    assert set(listed(client, "visibility=community")) == {community, own_community}
    assert set(listed(client, "visibility=public")) == {public}
    assert set(listed(client, "visibility=shared")) == {shared_accepted}
    assert set(listed(client, "visibility=shared&member_status=pending")) == {shared_pending}
    assert set(listed(client, "visibility=shared&member_status=all")) == {
        shared_accepted, shared_pending}
    assert set(listed(client, "visibility=all")) == {
        public, community, shared_accepted, own_community}
    # shared-but-pending images can still be shown, just not listed by default
    assert client.get(f"/v2/images/{shared_pending}", headers=PROJECT_A).status_code == 200


def test_deleted_and_hidden_images(client: TestClient, glint: app.Glint) -> None:
    hidden = add_image(glint, CTX_A, os_hidden=True).id
    gone = add_image(glint, CTX_A).id
    glint.images.delete(CTX_A, gone)
    assert listed(client) == []
    assert listed(client, "os_hidden=true") == [hidden]
    assert client.get(f"/v2/images/{gone}", headers=PROJECT_A).status_code == 404


def test_filters(client: TestClient, glint: app.Glint) -> None:
    a = add_image(glint, CTX_A, b"a" * 10, name="alpha", tags=["x", "y"], os_distro="ubuntu").id
    b = add_image(glint, CTX_A, b"b" * 20, name="beta, the second", tags=["x"],
                  disk_format="qcow2", protected=True, min_ram=512).id
    c = add_image(glint, CTX_A, name="gamma").id
    assert listed(client, "name=alpha") == [a]
    assert listed(client, "name=eq:alpha") == [a]
    assert set(listed(client, 'name=in:alpha,"beta, the second"')) == {a, b}
    assert set(listed(client, "status=in:active,queued")) == {a, b, c}
    assert listed(client, "status=queued") == [c]
    assert listed(client, "disk_format=qcow2") == [b]
    assert set(listed(client, f"id=in:{a},{c}")) == {a, c}
    assert set(listed(client, "tag=x")) == {a, b}
    assert listed(client, "tag=x&tag=y") == [a]
    assert listed(client, "size_min=15") == [b]
    assert listed(client, "size_max=15") == [a]
    assert listed(client, "protected=true") == [b]
    assert set(listed(client, "protected=false")) == {a, c}
    assert listed(client, "min_ram=512") == [b]
    assert listed(client, "os_distro=ubuntu") == [a]
    assert listed(client, "os_distro=debian") == []
    image = glint.images.get(CTX_A, a)
    assert listed(client, f"checksum={image.checksum}") == [a]
    assert listed(client, f"os_hash_value={image.os_hash_value}") == [a]
    assert set(listed(client, "owner=project-a")) == {a, b, c}


def test_time_filters(client: TestClient, glint: app.Glint) -> None:
    old = add_image(glint, CTX_A).id
    new = add_image(glint, CTX_A).id
    with glint.db.session() as session:
        row = session.get(models.Image, old)
        assert row is not None
        row.created_at = datetime.datetime(2020, 1, 1, 12, 0, 0)
    assert listed(client, "created_at=lt:2021-01-01T00:00:00Z") == [old]
    assert listed(client, "created_at=gte:2021-01-01T00:00:00%2B01:00") == [new]
    assert listed(client, "created_at=2020-01-01T12:00:00") == [old]
    assert listed(client, "created_at=neq:2020-01-01T12:00:00Z") == [new]
    assert listed(client, "created_at=eq:2020-01-01T13:00:00%2B01:00") == [old]


def page_through(client: TestClient, first: str) -> list[list[str]]:
    pages: list[list[str]] = []
    url: str | None = first
    while url is not None:
        body = client.get(url, headers=PROJECT_A).json()
        pages.append([i["id"] for i in body["images"]])
        url = body.get("next")
        assert len(pages) < 10
    return pages


@pytest.mark.parametrize("sort", ["sort_key=name&sort_dir={d}", "sort=name:{d},size:desc",
                                  "sort_key=size&sort_key=name&sort_dir={d}",
                                  "sort_key=created_at&sort_dir={d}"])
def test_paging_through_three_pages_both_ways(client: TestClient, glint: app.Glint,
                                              sort: str) -> None:
    names = [None, "b", "a", None, "b", "c", "a"]  # NULLs and ties on purpose
    created = [add_image(glint, CTX_A, b"x" * (i % 3) if i % 2 else None, name=name).id
               for i, name in enumerate(names)]
    orders = {}
    for direction in ("asc", "desc"):
        query = sort.format(d=direction)
        whole = listed(client, f"{query}&limit=100")
        pages = page_through(client, f"/v2/images?{query}&limit=3")
        assert [len(p) for p in pages] == [3, 3, 1]
        assert [i for page in pages for i in page] == whole
        assert sorted(whole) == sorted(created)
        orders[direction] = whole
    if sort.startswith("sort_key=name"):
        assert orders["asc"] == orders["desc"][::-1]
        bodies = client.get("/v2/images?sort_key=name&sort_dir=asc&limit=100",
                            headers=PROJECT_A).json()["images"]
        assert [i["name"] for i in bodies] == [None, None, "a", "a", "b", "b", "c"]


def test_next_only_on_full_pages_and_links_keep_the_query(client: TestClient,
                                                          glint: app.Glint) -> None:
    for _ in range(2):
        add_image(glint, CTX_A, tags=["t"])
    body = client.get("/v2/images?limit=1&tag=t", headers=PROJECT_A).json()
    assert body["schema"] == "/v2/schemas/images"
    assert body["first"] == "/v2/images?limit=1&tag=t"
    assert body["next"] == f"/v2/images?limit=1&tag=t&marker={body['images'][0]['id']}"
    last = client.get(body["next"], headers=PROJECT_A).json()
    assert len(last["images"]) == 1 and "next" in last
    assert client.get(last["next"], headers=PROJECT_A).json()["images"] == []
    assert "next" not in client.get("/v2/images?limit=5", headers=PROJECT_A).json()


def test_marker_of_an_invisible_image_is_400(client: TestClient, glint: app.Glint) -> None:
    theirs = add_image(glint, CTX_B, visibility="private").id
    response = client.get(f"/v2/images?marker={theirs}", headers=PROJECT_A)
    assert response.status_code == 400
    assert "marker" in error_of(response)["message"]


def test_delete(client: TestClient, glint: app.Glint) -> None:
    image = add_image(glint, CTX_A, b"data")
    response = client.delete(f"/v2/images/{image.id}", headers=PROJECT_A)
    assert response.status_code == 204
    assert response.content == b""
    assert client.get(f"/v2/images/{image.id}", headers=PROJECT_A).status_code == 404
    assert image.id not in glint.store.blobs  # type: ignore[attr-defined]
    assert client.delete(f"/v2/images/{image.id}", headers=PROJECT_A).status_code == 404


def test_delete_someone_elses_public_image_is_403(client: TestClient, glint: app.Glint) -> None:
    image = add_image(glint, CTX_B, visibility="public")
    response = client.delete(f"/v2/images/{image.id}", headers=PROJECT_A)
    assert response.status_code == 403
    error_of(response)
    assert client.delete(f"/v2/images/{image.id}", headers=PROJECT_B).status_code == 204


def test_delete_protected_image_is_403(client: TestClient, glint: app.Glint) -> None:
    image = add_image(glint, CTX_A, protected=True)
    assert client.delete(f"/v2/images/{image.id}", headers=PROJECT_A).status_code == 403


def test_image_tasks(client: TestClient, glint: app.Glint) -> None:
    image = add_image(glint, CTX_A)
    task = glint.tasks.create(RequestContext(user_id="user-a", project_id="project-a",
                                             roles=("member",), request_id="req-t"),
                              "echo", {"n": 1}, image_id=image.id)
    add_image(glint, CTX_A)  # another image's (empty) task list
    response = client.get(f"/v2/images/{image.id}/tasks", headers=PROJECT_A)
    assert response.status_code == 200
    (raw,) = response.json()["tasks"]
    assert raw["id"] == task.id
    assert raw["image_id"] == image.id
    assert raw["request_id"] == "req-t"
    assert raw["user_id"] == "user-a"
    assert raw["deleted"] is False and raw["deleted_at"] is None
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}$", raw["created_at"])
    assert "self" not in raw
    assert client.get(f"/v2/images/{uuid.uuid4()}/tasks", headers=PROJECT_A).status_code == 404


def test_image_schema_is_glances(client: TestClient) -> None:
    schema = client.get("/v2/schemas/image").json()
    assert schema["name"] == "image"
    assert schema["additionalProperties"] == {"type": "string"}
    assert [link["rel"] for link in schema["links"]] == ["self", "enclosure", "describedby"]
    properties = schema["properties"]
    assert properties["name"]["type"] == ["null", "string"]
    assert properties["disk_format"]["enum"][0] is None and "qcow2" in properties[
        "disk_format"]["enum"]
    assert properties["container_format"]["enum"][:2] == [None, "ami"]
    assert set(properties["visibility"]["enum"]) == {"community", "public", "private", "shared"}
    assert "killed" in properties["status"]["enum"]
    images = client.get("/v2/schemas/images").json()
    assert images["properties"]["images"]["items"] == schema


def test_real_images_validate_against_the_served_schemas(client: TestClient,
                                                         glint: app.Glint) -> None:
    schema = client.get("/v2/schemas/image").json()
    queued = add_image(glint, CTX_A, name=None, disk_format=None, container_format=None,
                       architecture="x86_64")
    active = add_image(glint, CTX_A, b"bytes", name="n", tags=["t"], min_disk=1)
    for image in (queued, active):
        jsonschema.validate(client.get(f"/v2/images/{image.id}", headers=PROJECT_A).json(),
                            schema)
    jsonschema.validate(client.get("/v2/images", headers=PROJECT_A).json(),
                        client.get("/v2/schemas/images").json())
    body: dict[str, Any] = client.get(f"/v2/images/{active.id}", headers=PROJECT_A).json()
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**body, "disk_format": "floppy"}, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**body, "custom": 5}, schema)


def test_image_methods_not_served_are_405(client: TestClient, glint: app.Glint) -> None:
    image = add_image(glint, CTX_A)
    response = client.put(f"/v2/images/{image.id}", headers=PROJECT_A)
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, PATCH, DELETE"
    response = client.put("/v2/images", headers=PROJECT_A)
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, POST"


def test_import_info(client: TestClient) -> None:
    # More in tests/unit/api/test_info.py.
    assert client.get("/v2/info/import").json() == {"import-methods": {
        "description": "Import methods available.", "type": "array",
        "value": ["glance-direct", "web-download"]}}
