"""The versions document and URL version negotiation."""

from __future__ import annotations

import pathlib
from collections.abc import Callable

from tests.unit.api.support import ADMIN, TestClient


def test_versions_lists_2_0_to_2_12_with_2_12_current(client: TestClient) -> None:
    response = client.get("/versions")
    assert response.status_code == 200
    versions = response.json()["versions"]
    assert [v["id"] for v in versions] == [f"v2.{n}" for n in range(12, -1, -1)]
    assert [v["id"] for v in versions if v["status"] == "CURRENT"] == ["v2.12"]
    assert {v["status"] for v in versions} == {"CURRENT", "SUPPORTED"}
    assert versions[0]["links"] == [{"rel": "self", "href": "http://testserver/v2/"}]


def test_root_is_300_multiple_choices(client: TestClient) -> None:
    response = client.get("/")
    assert response.status_code == 300
    assert response.json() == client.get("/versions").json()
    assert "x-openstack-request-id" in response.headers


def test_public_endpoint_is_used_for_links(make_client: Callable[..., TestClient]) -> None:
    client = make_client(public_endpoint="https://images.example.test/glance/")
    links = {v["links"][0]["href"] for v in client.get("/versions").json()["versions"]}
    assert links == {"https://images.example.test/glance/v2/"}


def test_minor_version_urls_are_served_as_v2(client: TestClient) -> None:
    assert client.get("/v2.12/tasks").json()["tasks"] == []
    assert client.get("/v2.0/schemas/task").json()["name"] == "task"


def test_unknown_versions_and_the_bare_v2_root_get_the_choices(client: TestClient) -> None:
    for path in ("/v1/images", "/v3", "/v2.13/tasks", "/v2", "/v2/"):
        assert client.get(path).status_code == 300, path


def test_the_image_cache_adds_2_14_as_glance_does(make_client: Callable[..., TestClient],
                                                  tmp_path: pathlib.Path) -> None:
    """glanceclient's cache commands ask for v2.14 in the versions document: with the cache
    on it is there (and CURRENT); 2.13 stays multi-store's."""
    client = make_client(image_cache_enabled=True, image_cache_dir=tmp_path / "cache")
    versions = client.get("/versions").json()["versions"]
    assert [v["id"] for v in versions] == ["v2.14", *(f"v2.{n}" for n in range(12, -1, -1))]
    assert [v["id"] for v in versions if v["status"] == "CURRENT"] == ["v2.14"]
    assert client.get("/v2.14/cache", headers=ADMIN).json() == {"cached_images": [],
                                                              "queued_images": []}
    assert client.get("/v2.13/tasks").status_code == 300
