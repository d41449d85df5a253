"""The Images API write path: create and JSON-patch update, with Glance's codes and rules.

Every refused request is also checked to have changed nothing.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

import jsonschema
import pytest

from glint import app
from tests.unit.api.support import (
    ADMIN,
    CTX_A,
    CTX_B,
    PROJECT_A,
    PROJECT_B,
    TestClient,
    add_image,
    error_of,
    events,
)

V2_1 = "application/openstack-images-v2.1-json-patch"
V2_0 = "application/openstack-images-v2.0-json-patch"
ACCEPT_PATCH = f"{V2_0}, {V2_1}"


def create(client: TestClient, body: Any, headers: dict[str, str] = PROJECT_A) -> Any:
    return client.post("/v2/images", content=json.dumps(body),
                       headers={**headers, "Content-Type": "application/json"})


def patch(client: TestClient, image_id: str, ops: Any, headers: dict[str, str] = PROJECT_A,
          media_type: str = V2_1) -> Any:
    return client.patch(f"/v2/images/{image_id}", content=json.dumps(ops),
                        headers={**headers, "Content-Type": media_type})


def shown(client: TestClient, image_id: str, headers: dict[str, str] = PROJECT_A) -> Any:
    response = client.get(f"/v2/images/{image_id}", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def all_images(client: TestClient) -> list[Any]:
    return list(client.get("/v2/images?visibility=all&os_hidden=true&limit=1000",
                           headers=ADMIN).json()["images"]) + list(
        client.get("/v2/images?visibility=all&os_hidden=false&limit=1000",
                   headers=ADMIN).json()["images"])


# -- create ----------------------------------------------------------------------------------

def test_create_returns_201_location_import_methods_and_stores_it(
        client: TestClient, glint: app.Glint) -> None:
    response = create(client, {"name": "cirros", "disk_format": "qcow2",
                               "container_format": "bare", "tags": ["b", "a", "b"],
                               "os_distro": "cirros", "min_ram": 64})
    assert response.status_code == 201, response.text
    body = response.json()
    assert response.headers["location"] == f"/v2/images/{body['id']}"
    assert response.headers["openstack-image-import-methods"] == "glance-direct,web-download"
    assert body["status"] == "queued"
    assert body["visibility"] == "shared"
    assert body["owner"] == "project-a"
    assert body["protected"] is False and body["os_hidden"] is False
    assert body["min_disk"] == 0 and body["min_ram"] == 64
    assert body["tags"] == ["a", "b"]
    assert body["os_distro"] == "cirros"
    assert shown(client, body["id"]) == body
    assert events(glint) == ["image.create"]
    jsonschema.validate(body, client.get("/v2/schemas/image").json())


def test_create_with_an_id_and_then_the_same_id_is_409(client: TestClient) -> None:
    wanted = str(uuid.uuid4())
    assert create(client, {"id": wanted}).json()["id"] == wanted
    response = create(client, {"id": wanted, "name": "again"}, headers=PROJECT_B)
    assert response.status_code == 409
    assert wanted in error_of(response)["message"]
    assert shown(client, wanted)["name"] is None


def test_import_methods_header_comes_from_the_settings(
        make_client: Callable[..., TestClient]) -> None:
    none = make_client(enabled_import_methods=())
    assert "openstack-image-import-methods" not in create(none, {}).headers
    one = make_client(enabled_import_methods=("web-download",))
    assert create(one, {}).headers["openstack-image-import-methods"] == "web-download"


@pytest.mark.parametrize("key", ["status", "checksum", "size", "virtual_size", "created_at",
                                 "updated_at", "os_hash_algo", "os_hash_value", "direct_url",
                                 "self", "file", "schema", "stores", "locations"])
def test_create_with_a_read_only_attribute_is_403(client: TestClient, key: str) -> None:
    response = create(client, {"name": "x", key: "active"})
    assert response.status_code == 403
    assert f"'{key}' is read-only" in error_of(response)["message"]
    assert all_images(client) == []


@pytest.mark.parametrize("key", ["location", "deleted", "deleted_at", "os_glance_import_task",
                                 "os_glance_anything"])
def test_create_with_a_reserved_attribute_is_403(client: TestClient, key: str) -> None:
    response = create(client, {key: "x"})
    assert response.status_code == 403
    assert f"'{key}' is reserved" in error_of(response)["message"]
    assert all_images(client) == []


@pytest.mark.parametrize(("body", "named"), [
    ({"name": 5}, "name"),
    ({"name": "n" * 256}, "name"),
    ({"visibility": "everyone"}, "visibility"),
    ({"visibility": None}, "visibility"),
    ({"protected": "yes"}, "protected"),
    ({"os_hidden": 1}, "os_hidden"),
    ({"min_ram": -1}, "min_ram"),
    ({"min_disk": "1"}, "min_disk"),
    ({"min_disk": True}, "min_disk"),
    ({"disk_format": "floppy"}, "disk_format"),
    ({"container_format": 5}, "container_format"),
    ({"id": "not-a-uuid"}, "id"),
    ({"id": "0123456789abcdef0123456789abcdef"}, "id"),
    ({"tags": "a"}, "tags"),
    ({"tags": [5]}, "tag"),
    ({"tags": ["t" * 256]}, "tag"),
    ({"owner": 5}, "owner"),
    ({"custom": 5}, "custom"),
    ({"custom": None}, "custom"),
    ({"custom": ["a"]}, "custom"),
    ({"k" * 256: "v"}, "property name"),
])
def test_create_with_a_bad_value_is_400_naming_it(client: TestClient, body: dict[str, Any],
                                                  named: str) -> None:
    response = create(client, body)
    assert response.status_code == 400, response.text
    assert named in error_of(response)["message"]
    assert all_images(client) == []


@pytest.mark.parametrize("raw", ["", "[]", "{", '"name"', "null", "NaN"])
def test_create_with_a_body_that_is_not_an_object_is_400(client: TestClient, raw: str) -> None:
    response = client.post("/v2/images", content=raw, headers=PROJECT_A)
    assert response.status_code == 400
    error_of(response)
    assert all_images(client) == []


def test_owner_and_visibility_rules_on_create(client: TestClient) -> None:
    response = create(client, {"owner": "project-b"})
    assert response.status_code == 403  # add_image: a member creates for its own project
    assert "add_image" in error_of(response)["message"]
    response = create(client, {"visibility": "public"})
    assert response.status_code == 403
    assert "publicize_image" in error_of(response)["message"]
    assert all_images(client) == []
    assert create(client, {"owner": "project-a"}).status_code == 201
    community = create(client, {"visibility": "community"})
    assert community.status_code == 201
    assert community.json()["visibility"] == "community"
    assert create(client, {"visibility": "private"}).json()["visibility"] == "private"
    by_admin = create(client, {"owner": "project-b", "visibility": "public"}, headers=ADMIN)
    assert by_admin.status_code == 201
    assert by_admin.json()["owner"] == "project-b"
    assert by_admin.json()["visibility"] == "public"


def test_create_quotas_are_413(make_client: Callable[..., TestClient]) -> None:
    client = make_client(image_property_quota=2, image_tag_quota=1)
    assert create(client, {"a": "1", "b": "2", "tags": ["x"]}).status_code == 201
    response = create(client, {"a": "1", "b": "2", "c": "3"})
    assert response.status_code == 413
    assert "Maximum: 2" in error_of(response)["message"]
    response = create(client, {"tags": ["x", "y"]})
    assert response.status_code == 413
    assert "tags" in error_of(response)["message"]
    assert len(client.get("/v2/images", headers=PROJECT_A).json()["images"]) == 1
    unlimited = make_client(image_property_quota=-1)
    assert create(unlimited, {f"p{i}": "v" for i in range(200)}).status_code == 201


# -- patch: what it changes --------------------------------------------------------------------

def test_patch_replaces_adds_and_removes(client: TestClient, glint: app.Glint) -> None:
    image = add_image(glint, CTX_A, name="old", os_distro="ubuntu", gone="bye", tags=["t"])
    response = patch(client, image.id, [
        {"op": "replace", "path": "/name", "value": "new"},
        {"op": "add", "path": "/architecture", "value": "x86_64"},
        {"op": "replace", "path": "/os_distro", "value": "debian"},
        {"op": "add", "path": "/os_distro", "value": "fedora"},  # v2.1 add overwrites
        {"op": "remove", "path": "/gone"},
        {"op": "replace", "path": "/min_disk", "value": 3},
        {"op": "replace", "path": "/protected", "value": True},
        {"op": "replace", "path": "/os_hidden", "value": True},
        {"op": "replace", "path": "/visibility", "value": "private"},
        {"op": "add", "path": "/a~1b~0c", "value": "escaped"},
    ])
    assert response.status_code == 200, response.text
    body = response.json()
    assert body == shown(client, image.id)
    assert body["name"] == "new"
    assert body["architecture"] == "x86_64"
    assert body["os_distro"] == "fedora"
    assert "gone" not in body
    assert body["min_disk"] == 3
    assert body["protected"] is True and body["os_hidden"] is True
    assert body["visibility"] == "private"
    assert body["a/b~c"] == "escaped"
    assert body["tags"] == ["t"]
    assert events(glint)[-1] == "image.update"
    jsonschema.validate(body, client.get("/v2/schemas/image").json())


def test_patch_tags_replaces_the_whole_list(client: TestClient, glint: app.Glint) -> None:
    image = add_image(glint, CTX_A, tags=["keep", "drop"])
    response = patch(client, image.id, [{"op": "replace", "path": "/tags",
                                         "value": ["new", "keep", "new"]}])
    assert response.status_code == 200, response.text
    assert shown(client, image.id)["tags"] == ["keep", "new"]
    assert patch(client, image.id, [{"op": "add", "path": "/tags", "value": []}]).json()[
        "tags"] == []


def test_patch_v2_0_form(client: TestClient, glint: app.Glint) -> None:
    image = add_image(glint, CTX_A, name="old", extra="1")
    response = patch(client, image.id, [{"replace": "/name", "value": "new"},
                                        {"add": "/fresh", "value": "yes"},
                                        {"remove": "/extra"}], media_type=V2_0)
    assert response.status_code == 200, response.text
    body = shown(client, image.id)
    assert (body["name"], body["fresh"], "extra" in body) == ("new", "yes", False)
    for existing in ("/name", "/fresh"):
        response = patch(client, image.id, [{"add": existing, "value": "x"}], media_type=V2_0)
        assert response.status_code == 409
        assert "already present" in error_of(response)["message"]
    assert shown(client, image.id) == body


def test_patch_with_a_charset_parameter_is_accepted(client: TestClient, glint: app.Glint) -> None:
    image = add_image(glint, CTX_A)
    response = patch(client, image.id, [{"op": "replace", "path": "/name", "value": "n"}],
                     media_type=f"{V2_1}; charset=UTF-8")
    assert response.status_code == 200


def test_admin_may_change_owner_and_publicize(client: TestClient, glint: app.Glint) -> None:
    image = add_image(glint, CTX_A)
    response = patch(client, image.id, [{"op": "replace", "path": "/owner", "value": "project-b"},
                                        {"op": "replace", "path": "/visibility",
                                         "value": "public"}], headers=ADMIN)
    assert response.status_code == 200, response.text
    assert shown(client, image.id, PROJECT_B)["owner"] == "project-b"
    assert shown(client, image.id, PROJECT_A)["visibility"] == "public"


def test_formats_change_only_while_queued(client: TestClient, glint: app.Glint) -> None:
    queued = add_image(glint, CTX_A)
    response = patch(client, queued.id, [{"op": "replace", "path": "/disk_format",
                                          "value": "qcow2"},
                                         {"op": "replace", "path": "/container_format",
                                          "value": None}])
    assert response.status_code == 200
    assert (response.json()["disk_format"], response.json()["container_format"]) == (
        "qcow2", None)
    active = add_image(glint, CTX_A, b"data")
    for key, value in (("disk_format", "qcow2"), ("container_format", "ovf")):
        response = patch(client, active.id, [{"op": "replace", "path": f"/{key}",
                                              "value": value}])
        assert response.status_code == 403
        assert "queued" in error_of(response)["message"]
    body = shown(client, active.id)
    assert (body["disk_format"], body["container_format"]) == ("raw", "bare")


def test_protected_image_cannot_be_deleted_until_unprotected(client: TestClient,
                                                             glint: app.Glint) -> None:
    image = add_image(glint, CTX_A, b"data")
    assert patch(client, image.id, [{"op": "replace", "path": "/protected",
                                     "value": True}]).status_code == 200
    response = client.delete(f"/v2/images/{image.id}", headers=PROJECT_A)
    assert response.status_code == 403
    assert "protected" in error_of(response)["message"]
    assert shown(client, image.id)["status"] == "active"
    assert image.id in glint.store.blobs  # type: ignore[attr-defined]
    assert patch(client, image.id, [{"op": "replace", "path": "/protected",
                                     "value": False}]).status_code == 200
    assert client.delete(f"/v2/images/{image.id}", headers=PROJECT_A).status_code == 204
    assert image.id not in glint.store.blobs  # type: ignore[attr-defined]


# -- patch: what it refuses --------------------------------------------------------------------

REFUSED: list[tuple[Any, int, str]] = [
    ({"op": "remove", "path": "/name"}, 403, "may not be removed"),
    ({"op": "remove", "path": "/tags"}, 403, "may not be removed"),
    ({"op": "remove", "path": "/visibility"}, 403, "may not be removed"),
    ({"op": "replace", "path": "/status", "value": "active"}, 403, "read-only"),
    ({"op": "replace", "path": "/id", "value": str(uuid.uuid4())}, 403, "read-only"),
    ({"op": "add", "path": "/checksum", "value": "0" * 32}, 403, "read-only"),
    ({"op": "replace", "path": "/size", "value": 1}, 403, "read-only"),
    ({"op": "replace", "path": "/self", "value": "x"}, 403, "read-only"),
    ({"op": "replace", "path": "/locations", "value": []}, 403, "read-only"),
    ({"op": "add", "path": "/locations", "value": []}, 400, "Invalid JSON pointer"),
    ({"op": "add", "path": "/locations/0", "value": {"url": "file:///etc/passwd",
                                                     "metadata": {}}}, 403, "read-only"),
    ({"op": "add", "path": "/os_glance_import_task", "value": "x"}, 403, "reserved"),
    ({"op": "remove", "path": "/os_glance_x"}, 403, "reserved"),
    ({"op": "replace", "path": "/deleted", "value": True}, 403, "reserved"),
    ({"op": "add", "path": "/location", "value": "x"}, 403, "reserved"),
    ({"op": "replace", "path": "/owner", "value": "project-b"}, 403, "Owner"),
    ({"op": "add", "path": "/owner", "value": "project-a"}, 403, "Owner"),
    ({"op": "replace", "path": "/visibility", "value": "public"}, 403, "publicize_image"),
    ({"op": "replace", "path": "/missing", "value": "x"}, 409, "does not exist"),
    ({"op": "remove", "path": "/missing"}, 409, "does not exist"),
    ({"op": "move", "path": "/name", "from": "/x"}, 400, "Invalid operation"),
    ({"op": "test", "path": "/name", "value": "x"}, 400, "Invalid operation"),
    ({"path": "/name", "value": "x"}, 400, "op"),
    ({"op": "replace", "value": "x"}, 400, "path"),
    ({"op": "replace", "path": "name", "value": "x"}, 400, 'does not start with "/"'),
    ({"op": "replace", "path": "/", "value": "x"}, 400, "valid token"),
    ({"op": "replace", "path": "/a//b", "value": "x"}, 400, "adjacent"),
    ({"op": "replace", "path": "/name/", "value": "x"}, 400, 'end with "/"'),
    ({"op": "replace", "path": "/na~2me", "value": "x"}, 400, "escape"),
    ({"op": "replace", "path": "/name/first", "value": "x"}, 400, "Invalid JSON pointer"),
    ({"op": "replace", "path": "/tags/0", "value": "x"}, 400, "Invalid JSON pointer"),
    ({"op": "replace", "path": 5, "value": "x"}, 400, "Pointer"),
    ({"op": "replace", "path": "/name"}, 400, 'requires a member named "value"'),
    ({"op": "replace", "path": "/name", "value": 5}, 400, "'name'"),
    ({"op": "replace", "path": "/name", "value": "n" * 256}, 400, "'name'"),
    ({"op": "replace", "path": "/min_ram", "value": -5}, 400, "'min_ram'"),
    ({"op": "replace", "path": "/protected", "value": "true"}, 400, "'protected'"),
    ({"op": "replace", "path": "/visibility", "value": "everyone"}, 400, "'visibility'"),
    ({"op": "replace", "path": "/disk_format", "value": "floppy"}, 400, "'disk_format'"),
    ({"op": "replace", "path": "/tags", "value": "t"}, 400, "'tags'"),
    ({"op": "replace", "path": "/tags", "value": ["t" * 256]}, 400, "tag"),
    ({"op": "add", "path": "/custom", "value": 5}, 400, "'custom'"),
    ({"op": "add", "path": "/custom", "value": None}, 400, "'custom'"),
    ({"op": "add", "path": "/" + "k" * 256, "value": "v"}, 400, "property name"),
    ("not an operation", 400, "JSON objects"),
]


@pytest.mark.parametrize(("op", "status", "says"), REFUSED,
                         ids=[f"{i}-{r[1]}" for i, r in enumerate(REFUSED)])
def test_patch_refusals(client: TestClient, glint: app.Glint, op: Any, status: int,
                        says: str) -> None:
    image = add_image(glint, CTX_A, name="n", tags=["t"], custom="c")
    before = shown(client, image.id)
    # A valid change first: a refused document must not apply any of its changes.
    response = patch(client, image.id, [{"op": "replace", "path": "/name", "value": "m"}, op])
    assert response.status_code == status, response.text
    assert says in error_of(response)["message"]
    assert shown(client, image.id) == before
    assert "image.update" not in events(glint)


@pytest.mark.parametrize("op", [{"replace": "/name"}, {"replace": "/name", "remove": "/x",
                                                       "value": 1},
                                {"copy": "/name", "value": "x"}])
def test_patch_v2_0_refusals(client: TestClient, glint: app.Glint, op: Any) -> None:
    image = add_image(glint, CTX_A, name="n")
    response = patch(client, image.id, [op], media_type=V2_0)
    assert response.status_code == 400
    error_of(response)
    assert shown(client, image.id)["name"] == "n"


@pytest.mark.parametrize("raw", ["", "{", '{"op": "replace"}', "null", "[1, 2", "NaN"])
def test_patch_malformed_documents_are_400(client: TestClient, glint: app.Glint,
                                           raw: str) -> None:
    image = add_image(glint, CTX_A, name="n")
    response = client.patch(f"/v2/images/{image.id}", content=raw,
                            headers={**PROJECT_A, "Content-Type": V2_1})
    assert response.status_code == 400
    error_of(response)
    assert shown(client, image.id)["name"] == "n"


@pytest.mark.parametrize("content_type", [None, "application/json",
                                          "application/json-patch+json",
                                          "application/openstack-images-v2.2-json-patch"])
def test_patch_other_media_types_are_415_with_accept_patch(
        client: TestClient, glint: app.Glint, content_type: str | None) -> None:
    image = add_image(glint, CTX_A, name="n")
    headers = dict(PROJECT_A)
    if content_type is not None:
        headers["Content-Type"] = content_type
    response = client.patch(f"/v2/images/{image.id}", headers=headers,
                            content=json.dumps([{"op": "replace", "path": "/name",
                                                 "value": "m"}]))
    assert response.status_code == 415
    assert response.headers["accept-patch"] == ACCEPT_PATCH
    error_of(response)
    assert shown(client, image.id)["name"] == "n"


def test_only_the_owner_may_patch(client: TestClient, glint: app.Glint) -> None:
    public = add_image(glint, CTX_B, name="theirs", visibility="public")
    private = add_image(glint, CTX_B, name="hidden", visibility="private")
    change = [{"op": "replace", "path": "/name", "value": "mine"}]
    response = patch(client, public.id, change)
    assert response.status_code == 403
    error_of(response)
    assert patch(client, private.id, change).status_code == 404
    assert patch(client, str(uuid.uuid4()), change).status_code == 404
    assert patch(client, "not-a-uuid", change).status_code == 404
    assert shown(client, public.id, PROJECT_B)["name"] == "theirs"
    assert shown(client, private.id, PROJECT_B)["name"] == "hidden"
    assert patch(client, private.id, change, headers=ADMIN).status_code == 200
    assert shown(client, private.id, PROJECT_B)["name"] == "mine"


def test_patch_quotas_are_413(make_client: Callable[..., TestClient]) -> None:
    client = make_client(image_property_quota=2, image_tag_quota=2)
    image = create(client, {"a": "1", "b": "2", "tags": ["x"]}).json()
    response = patch(client, image["id"], [{"op": "add", "path": "/c", "value": "3"}])
    assert response.status_code == 413
    assert "properties" in error_of(response)["message"]
    response = patch(client, image["id"], [{"op": "replace", "path": "/tags",
                                            "value": ["1", "2", "3"]}])
    assert response.status_code == 413
    assert "tags" in error_of(response)["message"]
    body = shown(client, image["id"])
    assert ("c" in body, body["tags"]) == (False, ["x"])
    # At the quota, existing properties can still change and be swapped.
    response = patch(client, image["id"], [{"op": "replace", "path": "/a", "value": "9"},
                                           {"op": "remove", "path": "/b"},
                                           {"op": "add", "path": "/c", "value": "3"}])
    assert response.status_code == 200, response.text
    assert (response.json()["a"], response.json()["c"]) == ("9", "3")


def test_patched_image_keeps_validating_for_glanceclient(client: TestClient,
                                                         glint: app.Glint) -> None:
    """glanceclient validates the whole image against the schema before it builds a patch."""
    schema = client.get("/v2/schemas/image").json()
    image = create(client, {"name": "n", "disk_format": None, "container_format": None}).json()
    jsonschema.validate(image, schema)
    for ops in ([{"op": "add", "path": "/foo", "value": "bar"}],
                [{"op": "replace", "path": "/tags", "value": ["a"]}],
                [{"op": "replace", "path": "/name", "value": None}],
                [{"op": "remove", "path": "/foo"}]):
        response = patch(client, image["id"], ops)
        assert response.status_code == 200, response.text
        jsonschema.validate(response.json(), schema)
