"""Database down: the API answers 503 naming the database (not 500), and recovers by itself."""

from __future__ import annotations

import pathlib
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from glint import app
from glint import settings as settings_mod
from glint.api import errors as api_errors
from glint.api.app import create_app
from glint.notifiers.memory import MemoryNotifier
from glint.scripts.registry import Registry
from glint.stores.memory import MemoryStore
from tests.conftest import MakeGlint
from tests.unit.api.support import PROJECT_A, Echo, TestClient

TASK = {"type": "echo", "input": {"x": 1}}


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # closed again when the socket is


@pytest.fixture
def unreachable(make_settings: Callable[..., settings_mod.Settings]) -> Iterator[TestClient]:
    """A client over a glint whose PostgreSQL is a closed loopback port.

    Not started (``glint.start`` reads the database to recover tasks, so a glint cannot start
    without one): this is a database that went away after start-up.
    """
    url = f"postgresql+psycopg://postgres@127.0.0.1:{_closed_port()}/x?connect_timeout=2"
    glint = app.build(make_settings(database_url=url), store=MemoryStore(),
                      notifier=MemoryNotifier(), registry=Registry.of({"echo": Echo}))
    try:
        with TestClient(create_app(glint, manage_lifecycle=False)) as client:
            yield client
    finally:
        glint.close(timeout=10)


def _assert_database_503(response: Any) -> None:
    assert response.status_code == 503, response.text
    error = response.json()["error"]
    assert (error["code"], error["title"]) == (503, "Service Unavailable")
    assert error["message"] == api_errors.DATABASE_UNAVAILABLE
    assert "database" in error["message"]
    assert response.headers["x-openstack-request-id"].startswith("req-")


def test_task_creation_with_the_database_unreachable_is_a_503(unreachable: TestClient) -> None:
    started = time.monotonic()
    _assert_database_503(unreachable.post("/v2/tasks", json=TASK, headers=PROJECT_A))
    assert time.monotonic() - started < 10


@pytest.mark.parametrize("path", ["/v2/tasks", "/v2/images", "/v2/images/"
                                  "00000000-0000-0000-0000-000000000000"])
def test_reads_with_the_database_unreachable_are_503s(unreachable: TestClient,
                                                      path: str) -> None:
    _assert_database_503(unreachable.get(path, headers=PROJECT_A))


def test_a_database_that_goes_away_gives_503s_and_then_recovers(
        make_glint: MakeGlint, tmp_path: pathlib.Path) -> None:
    """SQLite whose file cannot be opened (a directory in its place), then put back."""
    glint = make_glint(registry=Registry.of({"echo": Echo}))
    path = pathlib.Path(str(glint.db.url.database))
    with TestClient(create_app(glint)) as client:
        first = client.post("/v2/tasks", json=TASK, headers=PROJECT_A)
        assert first.status_code == 201, first.text

        glint.db.dispose()  # the server went away: its connections with it
        away = tmp_path / "away"
        away.mkdir()
        for file in tmp_path.glob(f"{path.name}*"):
            file.rename(away / file.name)
        path.mkdir()
        _assert_database_503(client.post("/v2/tasks", json=TASK, headers=PROJECT_A))
        _assert_database_503(client.get(f"/v2/tasks/{first.json()['id']}", headers=PROJECT_A))

        path.rmdir()
        for file in away.iterdir():
            file.rename(tmp_path / file.name)
        again = client.post("/v2/tasks", json=TASK, headers=PROJECT_A)
        assert again.status_code == 201, again.text
        listed = client.get("/v2/tasks", headers=PROJECT_A).json()["tasks"]
        assert {t["id"] for t in listed} == {first.json()["id"], again.json()["id"]}


def test_other_database_errors_stay_unexpected() -> None:
    """A bug in a query (say an integrity error) is not reported as the database being down."""
    assert not api_errors.database_unavailable(sa.exc.IntegrityError("x", {}, Exception("dup")))
    assert not api_errors.database_unavailable(sa.exc.ProgrammingError("x", {}, Exception("bad")))
    assert api_errors.database_unavailable(sa.exc.OperationalError("x", {}, Exception("refused")))
    assert api_errors.database_unavailable(sa.exc.InterfaceError("x", {}, Exception("closed")))
    assert api_errors.database_unavailable(sa.exc.TimeoutError("pool exhausted"))
    assert api_errors.database_unavailable(
        sa.exc.DBAPIError("x", {}, Exception("gone"), connection_invalidated=True))


def test_a_query_bug_is_still_a_500(glint: app.Glint, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise sa.exc.IntegrityError("INSERT", {}, Exception("duplicate key"))

    monkeypatch.setattr(glint.tasks, "create", broken)
    with TestClient(create_app(glint), raise_server_exceptions=False) as client:
        response = client.post("/v2/tasks", json=TASK, headers=PROJECT_A)
    assert response.status_code == 500
    assert response.json()["error"]["message"] == api_errors.SERVER_ERROR


def test_a_lost_connection_mid_request_is_a_503(glint: app.Glint,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    def dropped(*args: Any, **kwargs: Any) -> Any:
        raise sa.exc.DBAPIError("SELECT 1", {}, Exception("server closed the connection"),
                                connection_invalidated=True)

    monkeypatch.setattr(glint.tasks, "create", dropped)
    with TestClient(create_app(glint)) as client:
        _assert_database_503(client.post("/v2/tasks", json=TASK, headers=PROJECT_A))
