"""Keystone mode against a real Keystone: tokens, refusals, and each persona's calls."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.keystone.conftest import KEYSTONE, Keystone
from tests.unit.api.support import TestClient, error_of


def auth(token: str, **extra: str) -> dict[str, str]:
    return {"X-Auth-Token": token, **extra}


def test_no_token_is_401_with_keystone_www_authenticate(keystone_client: TestClient) -> None:
    response = keystone_client.get("/v2/images")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == f'Keystone uri="{KEYSTONE}/v3"'
    assert "requires authentication" in response.json()["error"]["message"]
    assert "x-openstack-request-id" in response.headers


def test_invalid_token_is_401(keystone_client: TestClient) -> None:
    response = keystone_client.get("/v2/tasks", headers=auth("not-a-token"))
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Keystone uri=")


def test_identity_headers_cannot_be_spoofed_in_keystone_mode(
        keystone_client: TestClient, tokens: dict[str, str], keystone: Keystone) -> None:
    # Without a token the trusted headers of header mode count for nothing.
    spoofed = {"X-Project-Id": "p", "X-Roles": "admin", "X-Identity-Status": "Confirmed"}
    assert keystone_client.get("/v2/images", headers=spoofed).status_code == 401
    # With a member's token they are replaced by what the token says.
    response = keystone_client.post("/v2/images", json={"name": "spoof"},
                                    headers=auth(tokens["member"], **spoofed))
    assert response.status_code == 201
    assert response.json()["owner"] == keystone.personas["member"].project_id
    image_id = response.json()["id"]
    publicize = keystone_client.patch(
        f"/v2/images/{image_id}", content=b'[{"op": "replace", "path": "/visibility", '
        b'"value": "public"}]', headers=auth(tokens["member"], **spoofed,
                                             **{"Content-Type": PATCH}))
    assert publicize.status_code == 403


def test_public_documents_need_no_token(keystone_client: TestClient) -> None:
    assert keystone_client.get("/versions").status_code == 200
    assert keystone_client.get("/").status_code == 300


def test_token_without_a_project_is_refused(keystone_client: TestClient,
                                            keystone: Keystone) -> None:
    response = keystone_client.get("/v2/images",
                                   headers=auth(keystone.unscoped_token("member")))
    assert response.status_code == 403
    assert "project-scoped" in error_of(response)["message"]


PATCH = "application/openstack-images-v2.1-json-patch"


def _image(client: TestClient, token: str, **body: Any) -> dict[str, Any]:
    response = client.post("/v2/images", json={"name": "persona", **body}, headers=auth(token))
    assert response.status_code == 201, response.text
    return dict(response.json())


# (persona, method, path template, body, expected status). {image} is a private image of
# project a (made by a's member), {shared} a shared one with project b added as a member.
CALLS: list[tuple[str, str, str, Any, int]] = [
    # images
    ("member", "POST", "/v2/images", {"name": "m"}, 201),
    ("reader", "POST", "/v2/images", {"name": "r"}, 403),
    ("service", "POST", "/v2/images", {"name": "s"}, 403),
    ("admin", "POST", "/v2/images", {"name": "a", "visibility": "public"}, 201),
    ("member", "POST", "/v2/images", {"name": "m", "visibility": "public"}, 403),
    ("reader", "GET", "/v2/images/{image}", None, 200),
    ("other", "GET", "/v2/images/{image}", None, 404),
    ("admin", "GET", "/v2/images/{image}", None, 200),
    ("reader", "GET", "/v2/images", None, 200),
    ("reader", "PATCH", "/v2/images/{image}", [{"op": "add", "path": "/k", "value": "v"}], 403),
    ("member", "PATCH", "/v2/images/{image}", [{"op": "add", "path": "/k", "value": "v"}], 200),
    ("reader", "DELETE", "/v2/images/{image}", None, 403),
    ("other", "DELETE", "/v2/images/{image}", None, 404),
    ("reader", "PUT", "/v2/images/{image}/tags/t", None, 403),
    ("member", "PUT", "/v2/images/{image}/tags/t", None, 204),
    # members
    ("reader", "POST", "/v2/images/{shared}/members", {"member": "{b}"}, 403),
    ("other", "GET", "/v2/images/{shared}/members", None, 200),
    ("other", "PUT", "/v2/images/{shared}/members/{b}", {"status": "accepted"}, 200),
    ("member", "PUT", "/v2/images/{shared}/members/{b}", {"status": "accepted"}, 403),
    ("other", "DELETE", "/v2/images/{shared}/members/{b}", None, 403),
    ("reader", "GET", "/v2/images/{shared}/members", None, 200),
    # tasks
    ("member", "POST", "/v2/tasks", {"type": "echo", "input": {}}, 201),
    ("reader", "POST", "/v2/tasks", {"type": "echo", "input": {}}, 403),
    ("reader", "GET", "/v2/tasks", None, 200),
    ("reader", "GET", "/v2/tasks/{task}", None, 200),
    ("other", "GET", "/v2/tasks/{task}", None, 404),
    ("admin", "GET", "/v2/tasks/{task}", None, 200),
    ("reader", "POST", "/v2/tasks/{task}/actions/cancel", None, 403),
]


@pytest.fixture(scope="module")
def objects(keystone_client: TestClient, tokens: dict[str, str],
            keystone: Keystone) -> dict[str, str]:
    b = keystone.personas["other"].project_id
    image = _image(keystone_client, tokens["member"], visibility="private")
    shared = _image(keystone_client, tokens["member"], visibility="shared")
    added = keystone_client.post(f"/v2/images/{shared['id']}/members", json={"member": b},
                                 headers=auth(tokens["member"]))
    assert added.status_code == 200, added.text
    task = keystone_client.post("/v2/tasks", json={"type": "echo", "input": {}},
                                headers=auth(tokens["member"]))
    assert task.status_code == 201, task.text
    return {"image": image["id"], "shared": shared["id"], "b": b, "task": task.json()["id"]}


def _fill(value: Any, names: dict[str, str]) -> Any:
    if isinstance(value, str):
        return value.format(**names)
    if isinstance(value, dict):
        return {key: _fill(item, names) for key, item in value.items()}
    if isinstance(value, list):
        return [_fill(item, names) for item in value]
    return value


@pytest.mark.parametrize(("persona", "method", "path", "body", "expected"), CALLS,
                         ids=[f"{c[0]}-{c[1]}-{c[2]}-{c[4]}" for c in CALLS])
def test_persona_calls(keystone_client: TestClient, tokens: dict[str, str],
                       objects: dict[str, str], persona: str, method: str, path: str,
                       body: Any, expected: int) -> None:
    headers = auth(tokens[persona])
    kwargs: dict[str, Any] = {}
    if method == "PATCH":
        headers["Content-Type"] = PATCH
        kwargs["content"] = json.dumps(_fill(body, objects)).encode()
    elif body is not None:
        kwargs["json"] = _fill(body, objects)
    response = keystone_client.request(method, _fill(path, objects), headers=headers, **kwargs)
    assert response.status_code == expected, response.text
