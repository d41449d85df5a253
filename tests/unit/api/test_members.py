"""Sharing: ``/v2/images/{id}/members`` and the visibility rules it drives (Glance's)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from typing import Any

import jsonschema
import pytest

from glint import app
from glint.notifiers.memory import MemoryNotifier
from tests.unit.api.support import (
    ADMIN,
    CTX_A,
    PROJECT_A,
    PROJECT_B,
    TestClient,
    add_image,
    error_of,
)

PROJECT_C = {"X-User-Id": "user-c", "X-Project-Id": "project-c", "X-Roles": "member"}
ISOTIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def add_member(client: TestClient, image_id: str, member: Any = "project-b",
               headers: dict[str, str] = PROJECT_A) -> Any:
    return client.post(f"/v2/images/{image_id}/members", json={"member": member},
                       headers=headers)


def set_status(client: TestClient, image_id: str, status: Any, member: str = "project-b",
               headers: dict[str, str] = PROJECT_B) -> Any:
    return client.put(f"/v2/images/{image_id}/members/{member}", json={"status": status},
                      headers=headers)


def members(client: TestClient, image_id: str, headers: dict[str, str] = PROJECT_A) -> Any:
    response = client.get(f"/v2/images/{image_id}/members", headers=headers)
    assert response.status_code == 200, response.text
    return {m["member_id"]: m["status"] for m in response.json()["members"]}


def listed(client: TestClient, headers: dict[str, str], query: str = "") -> set[str]:
    response = client.get(f"/v2/images?{query}", headers=headers)
    assert response.status_code == 200
    return {i["id"] for i in response.json()["images"]}


def can_see(client: TestClient, image_id: str, headers: dict[str, str]) -> bool:
    return bool(client.get(f"/v2/images/{image_id}", headers=headers).status_code == 200)


def test_sharing_lifecycle(client: TestClient, glint: app.Glint) -> None:
    image = add_image(glint, CTX_A, b"data", name="shared")
    assert not can_see(client, image.id, PROJECT_B)

    response = add_member(client, image.id)
    assert response.status_code == 200, response.text
    member = response.json()
    assert sorted(member) == ["created_at", "image_id", "member_id", "schema", "status",
                              "updated_at"]
    assert (member["image_id"], member["member_id"], member["status"], member["schema"]) == (
        image.id, "project-b", "pending", "/v2/schemas/member")
    assert ISOTIME.match(member["created_at"]) and ISOTIME.match(member["updated_at"])
    jsonschema.validate(member, client.get("/v2/schemas/member").json())

    # pending: visible to the member, but not in its default list
    assert can_see(client, image.id, PROJECT_B)
    assert image.id not in listed(client, PROJECT_B)
    assert listed(client, PROJECT_B, "member_status=pending") == {image.id}
    assert client.get(f"/v2/images/{image.id}/file", headers=PROJECT_B).content == b"data"

    response = set_status(client, image.id, "accepted")
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "accepted"
    assert listed(client, PROJECT_B) == {image.id}
    assert listed(client, PROJECT_B, "member_status=pending") == set()
    assert members(client, image.id) == {"project-b": "accepted"}

    assert set_status(client, image.id, "rejected").json()["status"] == "rejected"
    assert listed(client, PROJECT_B) == set()
    assert listed(client, PROJECT_B, "member_status=rejected") == {image.id}
    assert listed(client, PROJECT_B, "member_status=all") == {image.id}
    assert can_see(client, image.id, PROJECT_B)

    response = client.delete(f"/v2/images/{image.id}/members/project-b", headers=PROJECT_A)
    assert response.status_code == 204
    assert response.content == b""
    assert not can_see(client, image.id, PROJECT_B)
    assert listed(client, PROJECT_B, "member_status=all") == set()
    assert members(client, image.id) == {}

    # sharing again starts over as pending
    assert add_member(client, image.id).json()["status"] == "pending"
    assert members(client, image.id) == {"project-b": "pending"}

    inner = glint.notifier.inner  # type: ignore[attr-defined]
    assert isinstance(inner, MemoryNotifier)
    member_events = [e for e in inner.events if e.event_type.startswith("image.member")]
    assert [e.event_type for e in member_events] == [
        "image.member.create", "image.member.update", "image.member.update",
        "image.member.delete", "image.member.create"]
    assert sorted(member_events[3].payload) == ["created_at", "deleted", "deleted_at",
                                                "image_id", "member_id", "status", "updated_at"]
    assert member_events[3].payload["deleted"] is True
    assert member_events[1].payload["status"] == "accepted"


def test_members_list_and_show(client: TestClient, glint: app.Glint) -> None:
    image = add_image(glint, CTX_A)
    add_member(client, image.id, "project-b")
    add_member(client, image.id, "project-c")
    response = client.get(f"/v2/images/{image.id}/members", headers=PROJECT_A)
    body = response.json()
    assert sorted(body) == ["members", "schema"]
    assert body["schema"] == "/v2/schemas/members"
    assert [m["member_id"] for m in body["members"]] == ["project-b", "project-c"]
    jsonschema.validate(body, client.get("/v2/schemas/members").json())
    # a member sees only its own membership
    assert members(client, image.id, PROJECT_B) == {"project-b": "pending"}
    assert members(client, image.id, ADMIN) == {"project-b": "pending", "project-c": "pending"}
    shown = client.get(f"/v2/images/{image.id}/members/project-c", headers=PROJECT_A)
    assert shown.status_code == 200
    assert shown.json() == body["members"][1]
    assert client.get(f"/v2/images/{image.id}/members/project-c",
                      headers=PROJECT_B).status_code == 404
    assert client.get(f"/v2/images/{image.id}/members/project-b",
                      headers=PROJECT_B).json()["member_id"] == "project-b"
    response = client.get(f"/v2/images/{image.id}/members/project-d", headers=PROJECT_A)
    assert response.status_code == 404
    assert "project-d" in error_of(response)["message"]
    for odd in ("a%00b", "p" * 256):
        assert client.get(f"/v2/images/{image.id}/members/{odd}",
                          headers=PROJECT_A).status_code == 404
        assert client.delete(f"/v2/images/{image.id}/members/{odd}",
                             headers=PROJECT_A).status_code == 404


def test_duplicate_member_is_409(client: TestClient, glint: app.Glint) -> None:
    image = add_image(glint, CTX_A)
    assert add_member(client, image.id).status_code == 200
    response = add_member(client, image.id)
    assert response.status_code == 409
    assert "duplicated" in error_of(response)["message"]
    assert members(client, image.id) == {"project-b": "pending"}


@pytest.mark.parametrize("visibility", ["private", "public", "community"])
def test_only_shared_images_have_members(client: TestClient, glint: app.Glint,
                                         visibility: str) -> None:
    image = add_image(glint, CTX_A, visibility=visibility)
    for response in (add_member(client, image.id),
                     client.get(f"/v2/images/{image.id}/members", headers=PROJECT_A)):
        assert response.status_code == 403
        assert "Only shared images have members" in error_of(response)["message"]
    # Glance hides the reason on the single-member resource
    assert client.get(f"/v2/images/{image.id}/members/project-b",
                      headers=PROJECT_A).status_code == 404


def test_making_an_image_private_stops_sharing_it(client: TestClient, glint: app.Glint) -> None:
    image = add_image(glint, CTX_A)
    add_member(client, image.id)
    set_status(client, image.id, "accepted")
    patch = [{"op": "replace", "path": "/visibility", "value": "private"}]
    headers = {**PROJECT_A, "Content-Type": "application/openstack-images-v2.1-json-patch"}
    assert client.patch(f"/v2/images/{image.id}", json=patch, headers=headers).status_code == 200
    assert not can_see(client, image.id, PROJECT_B)
    assert listed(client, PROJECT_B, "member_status=all") == set()
    patch[0]["value"] = "shared"
    assert client.patch(f"/v2/images/{image.id}", json=patch, headers=headers).status_code == 200
    assert listed(client, PROJECT_B) == {image.id}


def test_who_may_add_and_remove_members(client: TestClient, glint: app.Glint) -> None:
    image = add_image(glint, CTX_A)
    add_member(client, image.id, "project-b")
    # a member may not share further, nor remove anyone (itself included)
    response = add_member(client, image.id, "project-c", headers=PROJECT_B)
    assert response.status_code == 403
    error_of(response)
    assert client.delete(f"/v2/images/{image.id}/members/project-b",
                         headers=PROJECT_B).status_code == 403
    # a project that cannot see the image gets 404 everywhere
    assert add_member(client, image.id, "project-c", headers=PROJECT_C).status_code == 404
    assert client.get(f"/v2/images/{image.id}/members", headers=PROJECT_C).status_code == 404
    assert client.delete(f"/v2/images/{image.id}/members/project-b",
                         headers=PROJECT_C).status_code == 404
    assert set_status(client, image.id, "accepted", headers=PROJECT_C).status_code == 404
    assert members(client, image.id) == {"project-b": "pending"}
    # deleting someone who is not a member
    assert client.delete(f"/v2/images/{image.id}/members/project-c",
                         headers=PROJECT_A).status_code == 404
    # an admin may do what the owner does
    assert add_member(client, image.id, "project-c", headers=ADMIN).status_code == 200
    assert client.delete(f"/v2/images/{image.id}/members/project-c",
                         headers=ADMIN).status_code == 204
    assert members(client, image.id) == {"project-b": "pending"}


def test_only_the_member_sets_its_status(client: TestClient, glint: app.Glint) -> None:
    image = add_image(glint, CTX_A)
    add_member(client, image.id, "project-b")
    add_member(client, image.id, "project-c")
    response = set_status(client, image.id, "accepted", headers=PROJECT_A)
    assert response.status_code == 403
    error_of(response)
    # another member cannot even see project-b's membership
    assert set_status(client, image.id, "accepted", headers=PROJECT_C).status_code == 404
    assert members(client, image.id) == {"project-b": "pending", "project-c": "pending"}
    assert set_status(client, image.id, "rejected", headers=ADMIN).status_code == 200
    assert members(client, image.id)["project-b"] == "rejected"
    assert set_status(client, image.id, "pending").json()["status"] == "pending"


@pytest.mark.parametrize(("body", "says"), [
    ({"status": "maybe"}, "Status must be"),
    ({"status": 1}, "Expected a status"),
    ({"status": None}, "Expected a status"),
    ({}, "Status not specified"),
    ({"state": "accepted"}, "Status not specified"),
])
def test_bad_status_bodies_are_400(client: TestClient, glint: app.Glint, body: Any,
                                   says: str) -> None:
    image = add_image(glint, CTX_A)
    add_member(client, image.id)
    response = client.put(f"/v2/images/{image.id}/members/project-b", json=body,
                          headers=PROJECT_B)
    assert response.status_code == 400
    assert says in error_of(response)["message"]
    assert members(client, image.id) == {"project-b": "pending"}


@pytest.mark.parametrize(("raw", "says"), [
    ('{"member": ""}', "can't be empty"),
    ('{"member": 5}', "Expected a member"),
    ('{"member": null}', "Expected a member"),
    ('{"member": "' + "p" * 256 + '"}', "at most 255"),
    ('{"member": "a\\u0001b"}', "printable"),
    ("{}", "not specified"),
    ('["project-b"]', "JSON object"),
    ("{", "Malformed"),
    ("", "Body expected"),
])
def test_bad_member_bodies_are_400(client: TestClient, glint: app.Glint, raw: str,
                                   says: str) -> None:
    image = add_image(glint, CTX_A)
    response = client.post(f"/v2/images/{image.id}/members", content=raw, headers=PROJECT_A)
    assert response.status_code == 400
    assert says in error_of(response)["message"]
    assert members(client, image.id) == {}


def test_member_quota_is_413(make_client: Callable[..., TestClient]) -> None:
    client = make_client(image_member_quota=1)
    image = client.post("/v2/images", json={}, headers=PROJECT_A).json()
    assert add_member(client, image["id"], "project-b").status_code == 200
    response = add_member(client, image["id"], "project-c")
    assert response.status_code == 413
    assert "Maximum: 1" in error_of(response)["message"]
    assert members(client, image["id"]) == {"project-b": "pending"}
    # a removed member frees its place
    client.delete(f"/v2/images/{image['id']}/members/project-b", headers=PROJECT_A)
    assert add_member(client, image["id"], "project-c").status_code == 200


def test_unknown_image_and_methods(client: TestClient, glint: app.Glint) -> None:
    missing = uuid.uuid4()
    assert add_member(client, str(missing)).status_code == 404
    assert client.get(f"/v2/images/{missing}/members", headers=PROJECT_A).status_code == 404
    assert client.get("/v2/images/nope/members", headers=PROJECT_A).status_code == 404
    image = add_image(glint, CTX_A)
    response = client.delete(f"/v2/images/{image.id}/members", headers=PROJECT_A)
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, POST"
    response = client.post(f"/v2/images/{image.id}/members/project-b", headers=PROJECT_A)
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, PUT, DELETE"


def test_one_project_never_sees_or_changes_anothers_private_image(
        client: TestClient, glint: app.Glint) -> None:
    image = add_image(glint, CTX_A, b"secret", visibility="private", name="mine", tags=["t"])
    patch_headers = {**PROJECT_B, "Content-Type": "application/openstack-images-v2.1-json-patch"}
    attempts = [
        client.get(f"/v2/images/{image.id}", headers=PROJECT_B),
        client.get(f"/v2/images/{image.id}/file", headers=PROJECT_B),
        client.patch(f"/v2/images/{image.id}", headers=patch_headers,
                     json=[{"op": "replace", "path": "/name", "value": "stolen"}]),
        client.delete(f"/v2/images/{image.id}", headers=PROJECT_B),
        client.put(f"/v2/images/{image.id}/tags/x", headers=PROJECT_B),
        client.delete(f"/v2/images/{image.id}/tags/t", headers=PROJECT_B),
        client.post(f"/v2/images/{image.id}/actions/deactivate", headers=PROJECT_B),
        client.get(f"/v2/images/{image.id}/members", headers=PROJECT_B),
        client.post(f"/v2/images/{image.id}/members", json={"member": "project-b"},
                    headers=PROJECT_B),
        client.get(f"/v2/images/{image.id}/members/project-b", headers=PROJECT_B),
        client.get(f"/v2/images/{image.id}/tasks", headers=PROJECT_B),
    ]
    assert [r.status_code for r in attempts] == [404] * len(attempts)
    assert listed(client, PROJECT_B, "visibility=all&member_status=all") == set()
    body = client.get(f"/v2/images/{image.id}", headers=PROJECT_A).json()
    assert (body["name"], body["tags"], body["status"]) == ("mine", ["t"], "active")


def test_member_schemas_are_glances(client: TestClient) -> None:
    member = client.get("/v2/schemas/member").json()
    assert member["name"] == "member"
    assert sorted(member["properties"]) == ["created_at", "image_id", "member_id", "schema",
                                            "status", "updated_at"]
    assert member["properties"]["status"]["enum"] == ["pending", "accepted", "rejected"]
    collection = client.get("/v2/schemas/members").json()
    assert collection["name"] == "members"
    assert collection["properties"]["members"]["items"] == member
    assert collection["links"] == [{"rel": "describedby", "href": "{schema}"}]
