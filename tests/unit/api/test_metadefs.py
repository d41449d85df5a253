"""``/v2/metadefs``: namespaces, their contents and resource types, through the app."""

from __future__ import annotations

from typing import Any

import pytest

from glint import app
from tests.unit.api.metadefs_support import NS, make_namespace, seed_resource_types
from tests.unit.api.support import ADMIN, PROJECT_A, PROJECT_B, TestClient, error_of

READER_A = {"X-User-Id": "reader-a", "X-Project-Id": "project-a", "X-Roles": "reader"}
ADMIN_A = {"X-User-Id": "admin-a", "X-Project-Id": "project-a", "X-Roles": "admin"}


@pytest.fixture
def seeded(glint: app.Glint, client: TestClient) -> TestClient:
    seed_resource_types(glint)
    return client


def names(listed: list[dict[str, Any]]) -> list[str]:
    return [item.get("namespace") or item["name"] for item in listed]


# -- namespaces ----------------------------------------------------------------------------


def test_create_show_update_delete_a_namespace(seeded: TestClient) -> None:
    created = make_namespace(seeded, "OS::Compute::Test", display_name="Test",
                             description="d", visibility="public", protected=True,
                             resource_type_associations=[{"name": "OS::Glance::Image",
                                                          "prefix": "hw_"}])
    assert created["namespace"] == "OS::Compute::Test"
    assert created["owner"] == "admin-project" and created["protected"] is True
    assert created["self"] == f"{NS}/OS::Compute::Test"
    assert created["schema"] == "/v2/schemas/metadefs/namespace"
    assert created["resource_type_associations"][0]["name"] == "OS::Glance::Image"
    shown = seeded.get(f"{NS}/OS::Compute::Test", headers=PROJECT_B).json()
    assert shown["visibility"] == "public" and shown["display_name"] == "Test"

    refused = seeded.delete(f"{NS}/OS::Compute::Test", headers=ADMIN)
    assert refused.status_code == 403 and "protected" in error_of(refused)["message"]
    updated = seeded.put(f"{NS}/OS::Compute::Test", headers=ADMIN, json={
        "namespace": "OS::Compute::Test", "visibility": "private", "protected": False})
    assert updated.status_code == 200, updated.text
    assert (updated.json()["visibility"], updated.json()["protected"]) == ("private", False)
    assert "display_name" not in updated.json()  # a PUT replaces every attribute
    assert seeded.get(f"{NS}/OS::Compute::Test", headers=PROJECT_B).status_code == 404
    assert seeded.delete(f"{NS}/OS::Compute::Test", headers=ADMIN).status_code == 204
    assert seeded.get(f"{NS}/OS::Compute::Test", headers=ADMIN).status_code == 404


def test_defaults_are_private_unprotected_and_owned_by_the_caller(client: TestClient) -> None:
    created = make_namespace(client, "plain")
    assert {k: created[k] for k in ("visibility", "protected", "owner")} == {
        "visibility": "private", "protected": False, "owner": "admin-project"}
    assert "display_name" not in created and "objects" not in created


def test_a_namespace_with_everything_in_it(client: TestClient) -> None:
    make_namespace(client, "full", objects=[{"name": "o", "properties": {
        "x": {"title": "X", "type": "string"}}, "required": ["x"]}],
        properties={"p": {"title": "P", "type": "integer", "minimum": 0}},
        tags=[{"name": "t1"}, {"name": "t2"}],
        resource_type_associations=[{"name": "OS::Nova::Flavor", "prefix": "hw:"}])
    shown = client.get(f"{NS}/full", headers=ADMIN).json()
    assert shown["properties"] == {"p": {"title": "P", "type": "integer", "minimum": 0}}
    assert [o["name"] for o in shown["objects"]] == ["o"]
    assert shown["tags"] == [{"name": "t1"}, {"name": "t2"}]
    prefixed = client.get(f"{NS}/full?resource_type=OS::Nova::Flavor", headers=ADMIN).json()
    assert list(prefixed["properties"]) == ["hw:p"]
    assert prefixed["objects"][0]["required"] == ["hw:x"]


def test_names_are_unique_across_projects(client: TestClient) -> None:
    make_namespace(client, "taken")
    response = client.post(NS, json={"namespace": "taken"}, headers=ADMIN_A)
    assert response.status_code == 409
    make_namespace(client, "other")
    renamed = client.put(f"{NS}/other", json={"namespace": "taken"}, headers=ADMIN)
    assert renamed.status_code == 409


@pytest.mark.parametrize(("body", "status"), [
    ({}, 400),
    ({"namespace": "x", "visibility": "shared"}, 400),
    ({"namespace": "x", "protected": "yes"}, 400),
    ({"namespace": "x", "bogus": 1}, 400),
    ({"namespace": "a/b"}, 400),
    ({"namespace": ""}, 400),
    ({"namespace": "x" * 81}, 400),
    ({"namespace": "x", "created_at": "2020-01-01T00:00:00Z"}, 403),
    ({"namespace": "x", "self": "/x"}, 403),
    ({"namespace": "x", "tags": [{"name": "t"}, {"name": "t"}]}, 409),
    ([], 400),
])
def test_invalid_namespaces_are_refused(client: TestClient, body: Any, status: int) -> None:
    response = client.post(NS, json=body, headers=ADMIN)
    assert response.status_code == status, response.text
    error_of(response)
    assert client.get(f"{NS}/x", headers=ADMIN).status_code == 404


def test_writing_is_for_admins(client: TestClient) -> None:
    assert client.post(NS, json={"namespace": "mine"}, headers=PROJECT_A).status_code == 403
    make_namespace(client, "public", visibility="public")
    for method, path, body in (
            ("PUT", f"{NS}/public", {"namespace": "public"}), ("DELETE", f"{NS}/public", None),
            ("POST", f"{NS}/public/objects", {"name": "o"}),
            ("POST", f"{NS}/public/properties", {"name": "p", "title": "P", "type": "string"}),
            ("POST", f"{NS}/public/tags/t", None), ("DELETE", f"{NS}/public/tags", None),
            ("POST", f"{NS}/public/resource_types", {"name": "OS::Glance::Image"})):
        response = client.request(method, path, json=body, headers=PROJECT_A)
        assert response.status_code == 403, (method, path, response.text)
        assert "metadef" in error_of(response)["message"]


def test_private_namespaces_are_seen_by_their_project_only(client: TestClient) -> None:
    make_namespace(client, "a-private", headers=ADMIN_A)
    make_namespace(client, "admin-private")
    make_namespace(client, "public", visibility="public")
    listed = client.get(NS, headers=READER_A).json()["namespaces"]
    assert sorted(names(listed)) == ["a-private", "public"]
    assert sorted(names(client.get(NS, headers=PROJECT_B).json()["namespaces"])) == ["public"]
    assert len(client.get(NS, headers=ADMIN).json()["namespaces"]) == 3
    assert client.get(f"{NS}/a-private", headers=READER_A).status_code == 200
    for path in ("", "/objects", "/properties", "/tags", "/resource_types", "/tags/t"):
        response = client.get(f"{NS}/a-private{path}", headers=PROJECT_B)
        assert response.status_code == 404, path
    # A write to a namespace the caller cannot see is 404, not 403: it learns nothing.
    assert client.delete(f"{NS}/a-private", headers=PROJECT_B).status_code == 404


def test_listing_pages_sorts_and_filters(seeded: TestClient) -> None:
    for name in ("n1", "n2", "n3"):
        make_namespace(seeded, name, visibility="public" if name != "n2" else "private")
    seeded.post(f"{NS}/n3/resource_types", json={"name": "OS::Cinder::Volume"}, headers=ADMIN)
    first = seeded.get(f"{NS}?limit=2&sort_key=namespace&sort_dir=asc", headers=ADMIN).json()
    assert names(first["namespaces"]) == ["n1", "n2"]
    assert first["schema"] == "/v2/schemas/metadefs/namespaces"
    second = seeded.get(first["next"], headers=ADMIN).json()
    assert names(second["namespaces"]) == ["n3"] and "next" not in second
    assert second["namespaces"][0]["resource_type_associations"][0]["name"] == (
        "OS::Cinder::Volume")
    public = seeded.get(f"{NS}?visibility=private", headers=ADMIN).json()["namespaces"]
    assert names(public) == ["n2"]
    typed = seeded.get(f"{NS}?resource_types=OS::Cinder::Volume,OS::Nova::Flavor",
                       headers=ADMIN).json()["namespaces"]
    assert names(typed) == ["n3"]
    by_name = seeded.get(f"{NS}?sort_key=display_name&sort_dir=desc&limit=1&marker=n2",
                         headers=ADMIN)
    assert by_name.status_code == 200


@pytest.mark.parametrize("query", ["limit=x", "limit=-1", "sort_dir=up", "sort_key=owner",
                                   "visibility=shared"])
def test_bad_list_queries_are_400(client: TestClient, query: str) -> None:
    assert client.get(f"{NS}?{query}", headers=ADMIN).status_code == 400


def test_an_unknown_marker_is_404(client: TestClient) -> None:
    assert client.get(f"{NS}?marker=nope", headers=ADMIN).status_code == 404


# -- objects and properties --------------------------------------------------------------


def test_objects(client: TestClient) -> None:
    make_namespace(client, "ns")
    created = client.post(f"{NS}/ns/objects", headers=ADMIN, json={
        "name": "obj", "description": "d", "properties": {"x": {"title": "X", "type": "string"}}})
    assert created.status_code == 201, created.text
    assert created.json()["self"] == f"{NS}/ns/objects/obj"
    assert client.post(f"{NS}/ns/objects", json={"name": "obj"}, headers=ADMIN).status_code == 409
    client.post(f"{NS}/ns/objects", json={"name": "other"}, headers=ADMIN)
    assert client.put(f"{NS}/ns/objects/obj", json={"name": "other"},
                      headers=ADMIN).status_code == 409
    renamed = client.put(f"{NS}/ns/objects/obj", json={"name": "renamed"}, headers=ADMIN)
    assert renamed.status_code == 200 and renamed.json()["name"] == "renamed"
    assert "description" not in renamed.json()
    assert client.get(f"{NS}/ns/objects/obj", headers=ADMIN).status_code == 404
    shown = client.get(f"{NS}/ns/objects/renamed", headers=ADMIN).json()
    assert shown["name"] == "renamed"
    listed = client.get(f"{NS}/ns/objects", headers=ADMIN).json()
    assert sorted(names(listed["objects"])) == ["other", "renamed"]
    assert client.delete(f"{NS}/ns/objects/renamed", headers=ADMIN).status_code == 204
    assert client.delete(f"{NS}/ns/objects/renamed", headers=ADMIN).status_code == 404
    assert client.post(f"{NS}/ns/objects", json={"description": "no name"},
                       headers=ADMIN).status_code == 400
    assert client.post(f"{NS}/nope/objects", json={"name": "o"}, headers=ADMIN).status_code == 404


def test_properties(seeded: TestClient) -> None:
    make_namespace(seeded, "ns")
    enum = ["kvm", "qemu"]
    body = {"name": "OS::Glance::Image", "title": "T", "type": "string", "enum": enum}
    created = seeded.post(f"{NS}/ns/properties", json=body, headers=ADMIN)
    assert created.status_code == 201, created.text
    assert created.json() == body
    assert seeded.post(f"{NS}/ns/properties", json=body, headers=ADMIN).status_code == 409
    shown = seeded.get(f"{NS}/ns/properties/OS::Glance::Image", headers=ADMIN).json()
    assert shown == body
    updated = seeded.put(f"{NS}/ns/properties/OS::Glance::Image", headers=ADMIN,
                         json={**body, "title": "U"})
    assert updated.status_code == 200 and updated.json()["title"] == "U"
    listed = seeded.get(f"{NS}/ns/properties", headers=ADMIN).json()["properties"]
    assert listed == {"OS::Glance::Image": {"title": "U", "type": "string", "enum": enum}}
    assert seeded.delete(f"{NS}/ns/properties/OS::Glance::Image",
                         headers=ADMIN).status_code == 204
    assert seeded.get(f"{NS}/ns/properties", headers=ADMIN).json()["properties"] == {}
    missing_title = {"name": "p", "type": "string"}
    assert seeded.post(f"{NS}/ns/properties", json=missing_title,
                       headers=ADMIN).status_code == 400
    bad_type = {"name": "p", "title": "P", "type": "date"}
    assert seeded.post(f"{NS}/ns/properties", json=bad_type, headers=ADMIN).status_code == 400


def test_nothing_in_a_protected_namespace_can_be_deleted(client: TestClient) -> None:
    make_namespace(client, "locked", protected=True, objects=[{"name": "o"}],
                   properties={"p": {"title": "P", "type": "string"}}, tags=[{"name": "t"}],
                   resource_type_associations=[{"name": "OS::Glance::Image"}])
    for path in ("objects/o", "properties/p", "tags/t", "tags", "resource_types/OS::Glance::Image"):
        response = client.delete(f"{NS}/locked/{path}", headers=ADMIN)
        assert response.status_code == 403, path
    assert client.delete(f"{NS}/locked", headers=ADMIN).status_code == 403


def test_deleting_a_namespace_deletes_what_it_holds(client: TestClient) -> None:
    make_namespace(client, "gone", objects=[{"name": "o"}], tags=[{"name": "t"}],
                   properties={"p": {"title": "P", "type": "string"}},
                   resource_type_associations=[{"name": "OS::Glance::Image"}])
    assert client.delete(f"{NS}/gone", headers=ADMIN).status_code == 204
    again = make_namespace(client, "gone")
    assert "objects" not in again and "tags" not in again
    assert client.get(f"{NS}/gone/tags", headers=ADMIN).json() == {"tags": []}


# -- tags --------------------------------------------------------------------------------


def test_tags(client: TestClient) -> None:
    make_namespace(client, "ns")
    created = client.post(f"{NS}/ns/tags", headers=ADMIN,
                          json={"tags": [{"name": "a"}, {"name": "b"}, {"name": "c"}]})
    assert created.status_code == 201, created.text
    assert created.json() == {"tags": [{"name": "a"}, {"name": "b"}, {"name": "c"}]}
    one = client.post(f"{NS}/ns/tags/d", headers=ADMIN)
    assert one.status_code == 201 and one.json()["name"] == "d"
    assert client.post(f"{NS}/ns/tags/d", headers=ADMIN).status_code == 409
    assert client.get(f"{NS}/ns/tags/d", headers=ADMIN).json()["name"] == "d"
    renamed = client.put(f"{NS}/ns/tags/d", json={"name": "e"}, headers=ADMIN)
    assert renamed.status_code == 200 and renamed.json()["name"] == "e"
    assert client.put(f"{NS}/ns/tags/e", json={"name": "a"}, headers=ADMIN).status_code == 409
    assert client.delete(f"{NS}/ns/tags/e", headers=ADMIN).status_code == 204
    assert client.get(f"{NS}/ns/tags/e", headers=ADMIN).status_code == 404
    assert names(client.get(f"{NS}/ns/tags", headers=ADMIN).json()["tags"]) == ["a", "b", "c"]
    assert client.delete(f"{NS}/ns/tags", headers=ADMIN).status_code == 204
    assert client.get(f"{NS}/ns/tags", headers=ADMIN).json() == {"tags": []}


def test_bulk_tags_replace_unless_appending(client: TestClient) -> None:
    make_namespace(client, "ns", tags=[{"name": "old"}])
    replaced = client.post(f"{NS}/ns/tags", json={"tags": [{"name": "new"}]}, headers=ADMIN)
    assert replaced.status_code == 201
    assert names(client.get(f"{NS}/ns/tags", headers=ADMIN).json()["tags"]) == ["new"]
    appended = client.post(f"{NS}/ns/tags", json={"tags": [{"name": "more"}]},
                           headers={**ADMIN, "X-Openstack-Append": "True"})
    assert appended.status_code == 201
    assert sorted(names(client.get(f"{NS}/ns/tags", headers=ADMIN).json()["tags"])) == [
        "more", "new"]
    clash = client.post(f"{NS}/ns/tags", json={"tags": [{"name": "new"}]},
                        headers={**ADMIN, "X-Openstack-Append": "true"})
    assert clash.status_code == 409
    twice = client.post(f"{NS}/ns/tags", json={"tags": [{"name": "x"}, {"name": "x"}]},
                        headers=ADMIN)
    assert twice.status_code == 409
    for body in ({"tags": "x"}, {"tags": [{"nom": "x"}]}, {"tags": [{"name": "a/b"}]}):
        assert client.post(f"{NS}/ns/tags", json=body, headers=ADMIN).status_code == 400
    assert sorted(names(client.get(f"{NS}/ns/tags", headers=ADMIN).json()["tags"])) == [
        "more", "new"]


# -- resource types ----------------------------------------------------------------------


def test_resource_types_and_associations(seeded: TestClient) -> None:
    listed = seeded.get("/v2/metadefs/resource_types", headers=PROJECT_A).json()
    assert names(listed["resource_types"])[:3] == ["OS::Glance::Image", "OS::Cinder::Volume",
                                                   "OS::Nova::Flavor"]
    make_namespace(seeded, "ns")
    created = seeded.post(f"{NS}/ns/resource_types", headers=ADMIN,
                          json={"name": "OS::Glance::Image", "prefix": "hw_",
                                "properties_target": "image"})
    assert created.status_code == 201, created.text
    assert {k: created.json()[k] for k in ("name", "prefix", "properties_target")} == {
        "name": "OS::Glance::Image", "prefix": "hw_", "properties_target": "image"}
    assert seeded.post(f"{NS}/ns/resource_types", json={"name": "OS::Glance::Image"},
                       headers=ADMIN).status_code == 409
    associations = seeded.get(f"{NS}/ns/resource_types", headers=ADMIN).json()
    assert names(associations["resource_type_associations"]) == ["OS::Glance::Image"]
    # A new resource type is created on first association, as Glance does.
    assert seeded.post(f"{NS}/ns/resource_types", json={"name": "OS::New::Thing"},
                       headers=ADMIN).status_code == 201
    listed = seeded.get("/v2/metadefs/resource_types", headers=ADMIN).json()
    assert "OS::New::Thing" in names(listed["resource_types"])
    path = f"{NS}/ns/resource_types/OS::Glance::Image"
    assert seeded.delete(path, headers=ADMIN).status_code == 204
    assert seeded.delete(path, headers=ADMIN).status_code == 404
    assert seeded.delete(f"{NS}/ns/resource_types/Nope", headers=ADMIN).status_code == 404
    remaining = seeded.get(f"{NS}/ns/resource_types", headers=ADMIN).json()
    assert names(remaining["resource_type_associations"]) == ["OS::New::Thing"]


# -- schemas -----------------------------------------------------------------------------


@pytest.mark.parametrize(("schema", "name"), [
    ("namespace", "namespace"), ("namespaces", "namespaces"),
    ("resource_type", "resource_type_association"),
    ("resource_types", "resource_type_associations"), ("object", "object"),
    ("objects", "objects"), ("property", "property"), ("properties", "properties"),
    ("tag", "tag"), ("tags", "tags")])
def test_schemas(client: TestClient, schema: str, name: str) -> None:
    response = client.get(f"/v2/schemas/metadefs/{schema}", headers=READER_A)
    assert response.status_code == 200
    assert response.json()["name"] == name


def test_an_unknown_schema_is_404(client: TestClient) -> None:
    assert client.get("/v2/schemas/metadefs/nope", headers=PROJECT_A).status_code == 404


def test_responses_match_the_schemas(seeded: TestClient) -> None:
    """What glint returns validates against the schema it serves (glanceclient checks)."""
    import jsonschema

    make_namespace(seeded, "ns", display_name="N", objects=[{"name": "o"}],
                   properties={"p": {"title": "P", "type": "string"}}, tags=[{"name": "t"}],
                   resource_type_associations=[{"name": "OS::Glance::Image"}])

    def check(schema: str, path: str) -> None:
        document = seeded.get(f"/v2/schemas/metadefs/{schema}", headers=ADMIN).json()
        jsonschema.Draft4Validator(document).validate(seeded.get(path, headers=ADMIN).json())

    check("namespace", f"{NS}/ns")
    check("namespaces", NS)
    check("object", f"{NS}/ns/objects/o")
    check("objects", f"{NS}/ns/objects")
    check("property", f"{NS}/ns/properties/p")
    check("properties", f"{NS}/ns/properties")
    check("tag", f"{NS}/ns/tags/t")
    check("tags", f"{NS}/ns/tags")


def test_a_policy_file_can_open_writes_to_members(make_client: Any, tmp_path: Any) -> None:
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text('"metadef_admin": "role:member"\n')
    client = make_client(policy_file=policy_file)
    created = make_namespace(client, "theirs", headers=PROJECT_A)
    assert created["owner"] == "project-a"
    assert client.delete(f"{NS}/theirs", headers=PROJECT_A).status_code == 204
