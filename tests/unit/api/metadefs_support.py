"""Shared steps of the metadefs API tests: seeding resource types, making a namespace."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from glint import app
from glint.db import models
from tests.unit.api.support import ADMIN, TestClient

# What migration 0004 seeds (the unit tests build tables from the models, without it).
RESOURCE_TYPES = ("OS::Glance::Image", "OS::Cinder::Volume", "OS::Nova::Flavor")
NS = "/v2/metadefs/namespaces"


def seed_resource_types(glint: app.Glint) -> None:
    with glint.db.session() as session:
        session.add_all([models.MetadefResourceType(name=name, protected=True)
                         for name in RESOURCE_TYPES])


def make_namespace(client: TestClient, name: str, headers: dict[str, str] = ADMIN,
                   **values: Any) -> dict[str, Any]:
    response = client.post(NS, json={"namespace": name, **values}, headers=headers)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def tour(call: Callable[..., Any], glint: app.Glint) -> None:
    """Every metadefs operation once, for test_openapi's tour (``call(method, path, ...)``)."""
    seed_resource_types(glint)
    call("GET", "/v2/schemas/metadefs/namespace")
    call("GET", "/v2/schemas/metadefs/nope")
    call("POST", NS, headers=ADMIN, json={
        "namespace": "tour", "display_name": "Tour", "visibility": "public", "protected": True,
        "properties": {"p": {"title": "P", "type": "string"}}, "objects": [{"name": "o"}],
        "tags": [{"name": "t"}], "resource_type_associations": [{"name": "OS::Glance::Image"}]})
    call("POST", NS, headers=ADMIN, json={"namespace": "tour"})
    call("POST", NS, json={"namespace": "mine"})
    call("GET", f"{NS}?limit=1&sort_key=namespace&sort_dir=asc")
    call("GET", f"{NS}?visibility=shared")
    call("GET", f"{NS}/tour?resource_type=OS::Glance::Image")
    call("GET", f"{NS}/nope")
    call("DELETE", f"{NS}/tour", headers=ADMIN)
    call("GET", f"{NS}/tour/objects")
    call("POST", f"{NS}/tour/objects", headers=ADMIN, json={"name": "o2"})
    call("GET", f"{NS}/tour/objects/o2")
    call("PUT", f"{NS}/tour/objects/o2", headers=ADMIN, json={"name": "o3", "description": "d"})
    call("DELETE", f"{NS}/tour/objects/o3", headers=ADMIN)
    call("GET", f"{NS}/tour/properties")
    call("POST", f"{NS}/tour/properties", headers=ADMIN,
         json={"name": "q", "title": "Q", "type": "integer"})
    call("GET", f"{NS}/tour/properties/q")
    call("PUT", f"{NS}/tour/properties/q", headers=ADMIN,
         json={"name": "q", "title": "Q2", "type": "integer"})
    call("DELETE", f"{NS}/tour/properties/q", headers=ADMIN)
    call("GET", f"{NS}/tour/tags")
    call("POST", f"{NS}/tour/tags", headers={**ADMIN, "X-Openstack-Append": "true"},
         json={"tags": [{"name": "t2"}]})
    call("POST", f"{NS}/tour/tags/t3", headers=ADMIN)
    call("GET", f"{NS}/tour/tags/t3")
    call("PUT", f"{NS}/tour/tags/t3", headers=ADMIN, json={"name": "t4"})
    call("DELETE", f"{NS}/tour/tags/t4", headers=ADMIN)
    call("DELETE", f"{NS}/tour/tags", headers=ADMIN)
    call("GET", "/v2/metadefs/resource_types")
    call("GET", f"{NS}/tour/resource_types")
    call("POST", f"{NS}/tour/resource_types", headers=ADMIN, json={"name": "OS::Nova::Flavor"})
    call("DELETE", f"{NS}/tour/resource_types/OS::Nova::Flavor", headers=ADMIN)
    call("PUT", f"{NS}/tour", headers=ADMIN, json={"namespace": "tour"})
    call("DELETE", f"{NS}/tour", headers=ADMIN)
