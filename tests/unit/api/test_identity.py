"""The request context from trusted headers, the embedded default identity, and 401."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from glint import app, errors
from glint import settings as settings_mod
from glint.api import identity
from glint.api.app import create_app
from glint.context import RequestContext
from tests.unit.api.support import TestClient, error_of


@pytest.fixture
def settings(make_settings: Callable[..., settings_mod.Settings]) -> settings_mod.Settings:
    return make_settings()


def test_context_from_keystone_headers(settings: settings_mod.Settings) -> None:
    ctx = identity.from_headers({"x-user-id": "u1", "x-project-id": "p1",
                                 "x-roles": " Admin ,member,, Reader"}, settings, "req-1")
    assert (ctx.user_id, ctx.project_id, ctx.request_id) == ("u1", "p1", "req-1")
    assert ctx.roles == ("admin", "member", "reader")
    assert ctx.is_admin


def test_tenant_id_is_accepted_for_the_project(settings: settings_mod.Settings) -> None:
    ctx = identity.from_headers({"x-tenant-id": "p2"}, settings, "req-1")
    assert ctx.project_id == "p2"
    assert ctx.user_id is None
    assert ctx.roles == ()


def test_default_identity_without_a_project(settings: settings_mod.Settings) -> None:
    ctx = identity.from_headers({"x-auth-token": "anything"}, settings, "req-1")
    assert (ctx.user_id, ctx.project_id) == ("demo", "demo")
    assert ctx.roles == ("member", "reader")


@pytest.mark.parametrize(("headers", "named"), [
    ({"x-roles": "admin"}, "X-Roles without X-Project-Id"),
    ({"x-user-id": "alice"}, "X-User-Id without X-Project-Id"),
    ({"x-roles": "admin", "x-user-id": "alice"}, "X-Roles and X-User-Id without X-Project-Id")])
def test_roles_or_user_without_a_project_is_400_not_the_default(
        settings: settings_mod.Settings, headers: dict[str, str], named: str) -> None:
    """Acting as the default identity would silently drop the roles the caller asked for."""
    with pytest.raises(errors.BadRequest, match=named):
        identity.from_headers(headers, settings, "req-1")


def test_no_default_project_means_401(
        make_settings: Callable[..., settings_mod.Settings]) -> None:
    with pytest.raises(errors.Unauthorized):
        identity.from_headers({}, make_settings(default_project_id=None), "req-1")


def test_invalid_identity_status_is_401(settings: settings_mod.Settings) -> None:
    with pytest.raises(errors.Unauthorized):
        identity.from_headers({"x-identity-status": "Invalid", "x-project-id": "p"},
                              settings, "req-1")


def test_overlong_project_id_is_400(settings: settings_mod.Settings) -> None:
    with pytest.raises(errors.BadRequest):
        identity.from_headers({"x-project-id": "p" * 256}, settings, "req-1")


def test_401_over_http_but_versions_stay_public(make_client: Callable[..., TestClient]) -> None:
    client = make_client(default_project_id=None)
    response = client.get("/v2/tasks")
    assert response.status_code == 401
    assert "www-authenticate" not in response.headers
    assert "authentication" in error_of(response)["message"]
    assert "x-openstack-request-id" in response.headers
    assert client.get("/versions").status_code == 200
    assert client.get("/").status_code == 300
    reader = {"X-Project-Id": "p", "X-Roles": "reader"}  # get_tasks needs a role
    assert client.get("/v2/tasks", headers=reader).status_code == 200


def test_default_identity_owns_what_it_creates(client: TestClient) -> None:
    task = client.post("/v2/tasks", json={"type": "echo", "input": {}}).json()
    assert task["owner"] == "demo"
    assert task["user_id"] == "demo"


def test_the_admin_rule_decides_once_on_first_read(settings: settings_mod.Settings) -> None:
    calls: list[str] = []

    def rule(ctx: RequestContext) -> bool:
        calls.append(ctx.request_id)
        return True

    ctx = identity.from_headers({"x-project-id": "p1", "x-roles": "member"}, settings, "req-1",
                                rule)
    assert calls == []
    assert ctx.is_admin and ctx.is_admin
    assert calls == ["req-1"]
    assert ctx.to_dict()["is_admin"] is True  # what a task records of its creator


def test_the_policy_runs_only_for_requests_that_ask_who_is_admin(
        glint: app.Glint, monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[RequestContext] = []
    is_admin = glint.policy.is_admin

    def counting(ctx: RequestContext) -> bool:
        asked.append(ctx)
        return is_admin(ctx)

    monkeypatch.setattr(glint.policy, "is_admin", counting)
    with TestClient(create_app(glint)) as client:
        assert client.get("/v2/schemas/task").status_code == 200
        assert asked == []
        assert client.get("/v2/tasks").status_code == 200  # visibility reads it, once
        assert len(asked) == 1
