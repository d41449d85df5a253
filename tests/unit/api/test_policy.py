"""Policy in header mode, through the real app: each persona's allowed and refused calls.

The personas are Glance's: an admin, a member and a reader of the owning project (project-a),
a member of another project (project-b), and a service user of the owning project (so the
database shows it the image, and only the policy refuses). Refusals are 403, except where the
caller may not even see the resource, which is 404 as in Glance.
"""

from __future__ import annotations

import pathlib
from collections.abc import Callable
from typing import Any

import pytest

from glint import app, errors
from glint.api.app import create_app
from glint.scripts.registry import Registry
from tests.unit.api.support import CTX_A, CTX_B, Echo, Fail, TestClient, add_image, error_of

ADMIN = {"X-User-Id": "admin", "X-Project-Id": "admin-project", "X-Roles": "admin"}
MEMBER = {"X-User-Id": "user-a", "X-Project-Id": "project-a", "X-Roles": "member"}
READER = {"X-User-Id": "reader-a", "X-Project-Id": "project-a", "X-Roles": "reader"}
OTHER = {"X-User-Id": "user-b", "X-Project-Id": "project-b", "X-Roles": "member"}
OTHER_READER = {"X-User-Id": "reader-b", "X-Project-Id": "project-b", "X-Roles": "reader"}
SERVICE = {"X-User-Id": "nova", "X-Project-Id": "project-a", "X-Roles": "service"}
PERSONAS = {"admin": ADMIN, "member": MEMBER, "reader": READER, "other": OTHER,
            "service": SERVICE}
NAMES = list(PERSONAS)
DATA = b"raw disk bytes " * 1000
NEW_IMAGE = {"name": "new", "disk_format": "raw", "container_format": "bare"}
PATCH = {"Content-Type": "application/openstack-images-v2.1-json-patch"}
OCTET = {"Content-Type": "application/octet-stream"}
Call = tuple[str, str, dict[str, Any]]


def _expect(codes: str) -> dict[str, int]:
    """``"201 201 403 201 403"`` → the status each persona (in PERSONAS order) gets."""
    return dict(zip(NAMES, (int(c) for c in codes.split()), strict=True))


def _rename(name: str) -> dict[str, Any]:
    return {"headers": PATCH, "json": [{"op": "replace", "path": "/name", "value": name}]}


# (call, image kind, expected codes for admin member reader other service)
IMAGE_CALLS: dict[str, tuple[Call, str, str]] = {
    "create": (("POST", "/v2/images", {"json": NEW_IMAGE}), "active", "201 201 403 201 403"),
    "show": (("GET", "/v2/images/{id}", {}), "active", "200 200 200 404 404"),
    "list": (("GET", "/v2/images", {}), "active", "200 200 200 200 403"),
    "update": (("PATCH", "/v2/images/{id}", _rename("x")), "active", "200 200 403 404 404"),
    "delete": (("DELETE", "/v2/images/{id}", {}), "active", "204 204 403 404 404"),
    "upload": (("PUT", "/v2/images/{id}/file", {"headers": OCTET, "content": DATA}), "queued",
               "204 204 403 404 404"),
    "download": (("GET", "/v2/images/{id}/file", {}), "active", "200 200 403 404 404"),
    "deactivate": (("POST", "/v2/images/{id}/actions/deactivate", {}), "active",
                   "204 204 403 404 404"),
    "publicize": (("PATCH", "/v2/images/{id}", {
        "headers": PATCH, "json": [{"op": "replace", "path": "/visibility", "value": "public"}]}),
        "active", "200 403 403 404 404"),
    "tag": (("PUT", "/v2/images/{id}/tags/t", {}), "active", "204 204 403 404 404"),
    "image tasks": (("GET", "/v2/images/{id}/tasks", {}), "active", "200 200 200 404 404"),
    # A public image: everyone with a role sees it, only the owner's members change it.
    "show public": (("GET", "/v2/images/{id}", {}), "public", "200 200 200 200 404"),
    "download public": (("GET", "/v2/images/{id}/file", {}), "public", "200 200 403 200 404"),
    "update public": (("PATCH", "/v2/images/{id}", _rename("y")), "public",
                      "200 200 403 403 404"),
    "delete public": (("DELETE", "/v2/images/{id}", {}), "public", "204 204 403 403 404"),
}


@pytest.fixture
def glint(make_glint: Callable[..., app.Glint]) -> app.Glint:
    return make_glint(registry=Registry.of({"echo": Echo, "fail": Fail}))


def _client(glint: app.Glint) -> TestClient:
    return TestClient(create_app(glint, manage_lifecycle=False))


def _image(glint: app.Glint, kind: str) -> str:
    if kind == "queued":
        return add_image(glint, CTX_A).id
    visibility = "public" if kind == "public" else "private"
    return add_image(glint, CTX_A, data=DATA, visibility=visibility).id


def _call(client: TestClient, call: Call, headers: dict[str, str], **ids: str) -> Any:
    method, path, kwargs = call
    extra = kwargs.get("headers", {})
    rest = {k: v for k, v in kwargs.items() if k != "headers"}
    return client.request(method, path.format(**ids), headers={**headers, **extra}, **rest)


@pytest.mark.parametrize("persona", NAMES)
@pytest.mark.parametrize("action", list(IMAGE_CALLS))
def test_images(glint: app.Glint, action: str, persona: str) -> None:
    call, kind, codes = IMAGE_CALLS[action]
    image_id = _image(glint, kind)
    response = _call(_client(glint), call, PERSONAS[persona], id=image_id)
    assert response.status_code == _expect(codes)[persona], response.text
    if response.status_code == 403:
        assert "You are not authorized to complete" in error_of(response)["message"]


def test_a_refused_write_changes_nothing(glint: app.Glint) -> None:
    client = _client(glint)
    image_id = _image(glint, "active")
    assert _call(client, IMAGE_CALLS["update"][0], READER, id=image_id).status_code == 403
    assert _call(client, IMAGE_CALLS["delete"][0], READER, id=image_id).status_code == 403
    shown = client.get(f"/v2/images/{image_id}", headers=READER).json()
    assert (shown["name"], shown["status"]) == (None, "active")
    message = error_of(client.delete(f"/v2/images/{image_id}", headers=READER))["message"]
    assert message == "You are not authorized to complete delete_image action."


def test_a_list_shows_only_what_the_caller_may_see(glint: app.Glint) -> None:
    client = _client(glint)
    mine = _image(glint, "active")
    theirs = add_image(glint, CTX_B).id
    ids = {persona: {i["id"] for i in client.get("/v2/images", headers=h).json()["images"]}
           for persona, h in PERSONAS.items() if persona != "service"}
    assert ids == {"admin": {mine, theirs}, "member": {mine}, "reader": {mine},
                   "other": {theirs}}


# -- members ---------------------------------------------------------------------------------

MEMBER_CALLS: dict[str, tuple[Call, dict[str, int]]] = {
    "add": (("POST", "/v2/images/{id}/members", {"json": {"member": "project-c"}}),
            {**_expect("200 200 403 403 404")}),
    "list": (("GET", "/v2/images/{id}/members", {}), {**_expect("200 200 200 200 404")}),
    "show": (("GET", "/v2/images/{id}/members/project-b", {}),
             {**_expect("200 200 200 200 404")}),
    "accept": (("PUT", "/v2/images/{id}/members/project-b", {"json": {"status": "accepted"}}),
               {**_expect("200 403 403 200 404"), "other reader": 403}),
    "reject": (("PUT", "/v2/images/{id}/members/project-b", {"json": {"status": "rejected"}}),
               {**_expect("200 403 403 200 404"), "other reader": 403}),
    "delete": (("DELETE", "/v2/images/{id}/members/project-b", {}),
               {**_expect("204 204 403 403 404"), "other reader": 403}),
}
MEMBER_PERSONAS = {**PERSONAS, "other reader": OTHER_READER}


@pytest.mark.parametrize(("action", "persona"),
                         [(action, persona) for action, (_, codes) in MEMBER_CALLS.items()
                          for persona in MEMBER_PERSONAS if persona in codes])
def test_members(glint: app.Glint, action: str, persona: str) -> None:
    call, codes = MEMBER_CALLS[action]
    image_id = add_image(glint, CTX_A, data=DATA, visibility="shared").id
    glint.members.create(CTX_A, image_id, "project-b")
    response = _call(_client(glint), call, MEMBER_PERSONAS[persona], id=image_id)
    assert response.status_code == codes[persona], response.text
    if response.status_code == 403:
        assert "You are not authorized to complete" in error_of(response)["message"]


def test_a_member_sees_only_its_own_membership(glint: app.Glint) -> None:
    client = _client(glint)
    image_id = add_image(glint, CTX_A, visibility="shared").id
    for project in ("project-b", "project-c"):
        glint.members.create(CTX_A, image_id, project)
    listed = {persona: sorted(m["member_id"] for m in client.get(
        f"/v2/images/{image_id}/members", headers=h).json()["members"])
        for persona, h in (("owner", READER), ("member", OTHER_READER))}
    assert listed == {"owner": ["project-b", "project-c"], "member": ["project-b"]}


# -- tasks -----------------------------------------------------------------------------------

TASK_CALLS: dict[str, tuple[Call, str]] = {
    "create echo": (("POST", "/v2/tasks", {"json": {"type": "echo", "input": {}}}),
                    "201 201 403 201 403"),
    "create fail": (("POST", "/v2/tasks", {"json": {"type": "fail", "input": {}}}),
                    "201 201 403 201 403"),
    # An unknown type falls back to add_task: refused first, else 400.
    "create unknown": (("POST", "/v2/tasks", {"json": {"type": "nope", "input": {}}}),
                       "400 400 403 400 403"),
    "show": (("GET", "/v2/tasks/{id}", {}), "200 200 200 404 403"),
    "list": (("GET", "/v2/tasks", {}), "200 200 200 200 403"),
    # The task has finished: a caller the policy lets through gets 409 (already final).
    "cancel": (("POST", "/v2/tasks/{id}/actions/cancel", {}), "409 409 403 404 403"),
}


@pytest.mark.parametrize("persona", NAMES)
@pytest.mark.parametrize("action", list(TASK_CALLS))
def test_tasks(glint: app.Glint, action: str, persona: str) -> None:
    call, codes = TASK_CALLS[action]
    task = glint.tasks.create(CTX_A, "echo", {})
    response = _call(_client(glint), call, PERSONAS[persona], id=task.id)
    assert response.status_code == _expect(codes)[persona], response.text
    if response.status_code == 403:
        assert "You are not authorized to complete" in error_of(response)["message"]


def test_a_task_list_is_the_callers_project(glint: app.Glint) -> None:
    client = _client(glint)
    mine = glint.tasks.create(CTX_A, "echo", {}).id
    theirs = glint.tasks.create(CTX_B, "echo", {}).id
    ids = {persona: {t["id"] for t in client.get("/v2/tasks", headers=h).json()["tasks"]}
           for persona, h in (("admin", ADMIN), ("reader", READER), ("other", OTHER))}
    assert ids == {"admin": {mine, theirs}, "reader": {mine}, "other": {theirs}}


def test_the_refusal_names_the_task_types_rule(glint: app.Glint) -> None:
    response = _client(glint).post("/v2/tasks", json={"type": "echo", "input": {}},
                                   headers=READER)
    assert error_of(response)["message"] == ("You are not authorized to complete "
                                             "add_task:echo action.")


def test_stores_detail_is_for_admins_and_services(glint: app.Glint) -> None:
    client = _client(glint)
    codes = {p: client.get("/v2/info/stores/detail", headers=h).status_code
             for p, h in PERSONAS.items()}
    assert codes == _expect("200 403 403 403 200")
    [store] = client.get("/v2/info/stores/detail", headers=SERVICE).json()["stores"]
    assert store["id"] == glint.store.name and "type" in store


# -- a policy file ---------------------------------------------------------------------------

def _with_policy(make_glint: Callable[..., app.Glint], tmp_path: pathlib.Path,
                 text: str) -> tuple[app.Glint, TestClient]:
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    built = make_glint(registry=Registry.of({"echo": Echo, "export": Echo}), policy_file=path)
    return built, _client(built)


def test_a_policy_file_makes_one_task_type_admin_only(
        make_glint: Callable[..., app.Glint], tmp_path: pathlib.Path) -> None:
    _built, client = _with_policy(make_glint, tmp_path, '"add_task:export": "role:admin"\n')
    export = {"type": "export", "input": {}}
    refused = client.post("/v2/tasks", json=export, headers=MEMBER)
    assert refused.status_code == 403
    assert "add_task:export" in error_of(refused)["message"]
    assert client.post("/v2/tasks", json=export, headers=ADMIN).status_code == 201
    echo = {"type": "echo", "input": {}}
    assert client.post("/v2/tasks", json=echo, headers=MEMBER).status_code == 201


def test_a_policy_file_overrides_image_rules(make_glint: Callable[..., app.Glint],
                                             tmp_path: pathlib.Path) -> None:
    built, client = _with_policy(make_glint, tmp_path, (
        '"delete_image": "role:admin"\n'
        '"publicize_image": "role:admin or (role:member and project_id:%(project_id)s)"\n'))
    image_id = add_image(built, CTX_A, data=DATA).id
    assert client.delete(f"/v2/images/{image_id}", headers=MEMBER).status_code == 403
    publicize = _call(client, IMAGE_CALLS["publicize"][0], MEMBER, id=image_id)
    assert publicize.status_code == 200
    assert publicize.json()["visibility"] == "public"
    assert client.delete(f"/v2/images/{image_id}", headers=ADMIN).status_code == 204


def test_context_is_admin_decides_who_sees_everything(
        make_glint: Callable[..., app.Glint], tmp_path: pathlib.Path) -> None:
    built, client = _with_policy(make_glint, tmp_path, '"context_is_admin": "role:operator"\n')
    image_id = add_image(built, CTX_A).id
    operator = {"X-Project-Id": "ops", "X-Roles": "operator,reader"}
    assert client.get(f"/v2/images/{image_id}", headers=operator).status_code == 200
    assert client.get(f"/v2/images/{image_id}", headers=ADMIN).status_code == 404
    task = built.tasks.create(CTX_A, "echo", {})
    assert client.get(f"/v2/tasks/{task.id}", headers=operator).status_code == 200


def test_a_missing_or_broken_policy_file_stops_glint(
        make_glint: Callable[..., app.Glint], tmp_path: pathlib.Path) -> None:
    with pytest.raises(errors.ConfigurationError, match="is not a file"):
        make_glint(policy_file=tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text('"get_image": [unclosed\n')
    with pytest.raises(errors.ConfigurationError, match=r"broken\.yaml"):
        make_glint(policy_file=broken)
