"""Image tags (``PUT``/``DELETE .../tags/{tag}``) and the deactivate/reactivate actions."""

from __future__ import annotations

import uuid
from collections.abc import Callable

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


def tags_of(client: TestClient, image_id: str, headers: dict[str, str] = PROJECT_A) -> list[str]:
    response = client.get(f"/v2/images/{image_id}", headers=headers)
    assert response.status_code == 200
    return list(response.json()["tags"])


def status_of(client: TestClient, image_id: str) -> str:
    return str(client.get(f"/v2/images/{image_id}", headers=ADMIN).json()["status"])


# -- tags -------------------------------------------------------------------------------------

def test_add_and_remove_tags(client: TestClient, glint: app.Glint) -> None:
    image = add_image(glint, CTX_A, tags=["old"])
    response = client.put(f"/v2/images/{image.id}/tags/new%20tag", headers=PROJECT_A)
    assert response.status_code == 204
    assert response.content == b""
    assert tags_of(client, image.id) == ["new tag", "old"]
    assert client.put(f"/v2/images/{image.id}/tags/old", headers=PROJECT_A).status_code == 204
    assert tags_of(client, image.id) == ["new tag", "old"]  # idempotent
    assert client.get("/v2/images?tag=new%20tag", headers=PROJECT_A).json()["images"][0][
        "id"] == image.id
    response = client.delete(f"/v2/images/{image.id}/tags/old", headers=PROJECT_A)
    assert response.status_code == 204
    assert tags_of(client, image.id) == ["new tag"]
    assert events(glint).count("image.update") == 2  # the no-op PUT sent nothing


def test_deleting_a_missing_tag_is_404(client: TestClient, glint: app.Glint) -> None:
    image = add_image(glint, CTX_A, tags=["t"])
    response = client.delete(f"/v2/images/{image.id}/tags/other", headers=PROJECT_A)
    assert response.status_code == 404
    error_of(response)
    assert tags_of(client, image.id) == ["t"]


def test_tag_length_is_at_most_255(client: TestClient, glint: app.Glint) -> None:
    image = add_image(glint, CTX_A)
    assert client.put(f"/v2/images/{image.id}/tags/{'t' * 255}",
                      headers=PROJECT_A).status_code == 204
    response = client.put(f"/v2/images/{image.id}/tags/{'t' * 256}", headers=PROJECT_A)
    assert response.status_code == 400
    assert "tag" in error_of(response)["message"]
    response = client.put(f"/v2/images/{image.id}/tags/a%00b", headers=PROJECT_A)
    assert response.status_code == 400
    assert tags_of(client, image.id) == ["t" * 255]


def test_tag_quota_is_413(make_client: Callable[..., TestClient]) -> None:
    client = make_client(image_tag_quota=2)
    image = client.post("/v2/images", json={"tags": ["a", "b"]}, headers=PROJECT_A).json()
    assert client.put(f"/v2/images/{image['id']}/tags/a", headers=PROJECT_A).status_code == 204
    response = client.put(f"/v2/images/{image['id']}/tags/c", headers=PROJECT_A)
    assert response.status_code == 413
    assert "Maximum: 2" in error_of(response)["message"]
    assert tags_of(client, image["id"]) == ["a", "b"]


def test_only_the_owner_changes_tags(client: TestClient, glint: app.Glint) -> None:
    public = add_image(glint, CTX_B, visibility="public", tags=["t"])
    private = add_image(glint, CTX_B, visibility="private", tags=["t"])
    for method in ("put", "delete"):
        assert getattr(client, method)(f"/v2/images/{public.id}/tags/t",
                                       headers=PROJECT_A).status_code == 403
        assert getattr(client, method)(f"/v2/images/{private.id}/tags/t",
                                       headers=PROJECT_A).status_code == 404
        assert getattr(client, method)(f"/v2/images/{uuid.uuid4()}/tags/t",
                                       headers=PROJECT_A).status_code == 404
    assert tags_of(client, public.id, PROJECT_B) == ["t"]
    assert tags_of(client, private.id, PROJECT_B) == ["t"]
    assert client.put(f"/v2/images/{private.id}/tags/u", headers=ADMIN).status_code == 204
    assert tags_of(client, private.id, PROJECT_B) == ["t", "u"]


def test_tag_resource_methods(client: TestClient, glint: app.Glint) -> None:
    image = add_image(glint, CTX_A, tags=["t"])
    response = client.get(f"/v2/images/{image.id}/tags/t", headers=PROJECT_A)
    assert response.status_code == 405
    assert response.headers["allow"] == "PUT, DELETE"


# -- actions ----------------------------------------------------------------------------------

def test_deactivate_and_reactivate(client: TestClient, glint: app.Glint) -> None:
    image = add_image(glint, CTX_A, b"bytes", visibility="public")
    url = f"/v2/images/{image.id}/actions"
    before = len(events(glint))
    response = client.post(f"{url}/deactivate", headers=PROJECT_A)
    assert response.status_code == 204
    assert response.content == b""
    assert status_of(client, image.id) == "deactivated"
    assert client.get(f"/v2/images/{image.id}/file", headers=PROJECT_A).status_code == 403
    assert client.get(f"/v2/images/{image.id}/file", headers=PROJECT_B).status_code == 403
    assert client.get(f"/v2/images/{image.id}/file", headers=ADMIN).content == b"bytes"
    assert client.post(f"{url}/deactivate", headers=PROJECT_A).status_code == 204  # no-op
    assert status_of(client, image.id) == "deactivated"
    assert client.post(f"{url}/reactivate", headers=PROJECT_A).status_code == 204
    assert status_of(client, image.id) == "active"
    assert client.get(f"/v2/images/{image.id}/file", headers=PROJECT_B).content == b"bytes"
    assert client.post(f"{url}/reactivate", headers=PROJECT_A).status_code == 204  # no-op
    assert status_of(client, image.id) == "active"
    assert events(glint)[before:] == ["image.update", "image.update"]  # no-ops sent nothing


@pytest.mark.parametrize("action", ["deactivate", "reactivate"])
def test_actions_on_an_image_without_data_are_403(client: TestClient, glint: app.Glint,
                                                  action: str) -> None:
    image = add_image(glint, CTX_A)
    response = client.post(f"/v2/images/{image.id}/actions/{action}", headers=PROJECT_A)
    assert response.status_code == 403
    assert "queued" in error_of(response)["message"]
    assert status_of(client, image.id) == "queued"


@pytest.mark.parametrize("action", ["deactivate", "reactivate"])
def test_only_the_owner_or_an_admin_switches(client: TestClient, glint: app.Glint,
                                             action: str) -> None:
    public = add_image(glint, CTX_B, b"x", visibility="public")
    private = add_image(glint, CTX_B, b"x", visibility="private")
    if action == "reactivate":
        glint.images.deactivate(CTX_B, public.id)
        glint.images.deactivate(CTX_B, private.id)
    before = status_of(client, public.id)
    response = client.post(f"/v2/images/{public.id}/actions/{action}", headers=PROJECT_A)
    assert response.status_code == 403
    error_of(response)
    assert client.post(f"/v2/images/{private.id}/actions/{action}",
                       headers=PROJECT_A).status_code == 404
    assert status_of(client, public.id) == before
    assert status_of(client, private.id) == before
    assert client.post(f"/v2/images/{private.id}/actions/{action}",
                       headers=ADMIN).status_code == 204
    assert status_of(client, private.id) != before


def test_actions_answer_405_to_other_methods(client: TestClient, glint: app.Glint) -> None:
    image = add_image(glint, CTX_A, b"x")
    response = client.get(f"/v2/images/{image.id}/actions/deactivate", headers=PROJECT_A)
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert client.post(f"/v2/images/{image.id}/actions/explode",
                       headers=PROJECT_A).status_code == 404
