"""``/healthcheck`` and ``glint worker``'s health port: checks that mean something.

The database must answer and be at this glint's revision, each store must take the start of a
write, the broker must answer when an executor needs one, the reaper must be passing; a file
takes the process out of rotation. Plain text for load balancers (no token needed), JSON with
each check for admins.
"""

from __future__ import annotations

import json
import pathlib
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator

import pytest
from alembic import command

from glint import app, health
from glint.api.app import create_app
from glint.db import migrate
from glint.stores.memory import MemoryStore
from tests.unit.api.support import ADMIN, PROJECT_A, TestClient


class ReadOnlyStore(MemoryStore):
    def writer(self, image_id: str) -> object:  # type: ignore[override]
        raise OSError(30, "Read-only file system")


@pytest.fixture
def make_client(make_glint: Callable[..., app.Glint]) -> Iterator[Callable[..., TestClient]]:
    opened: list[TestClient] = []

    def make(*, migrated: bool = True, **overrides: object) -> TestClient:
        glint = make_glint(**overrides)
        if migrated:  # make_glint made the tables: record them as at the head revision
            command.stamp(migrate.config(glint.settings.effective_database_url), "head")
        client = TestClient(create_app(glint))
        client.__enter__()
        opened.append(client)
        return client

    yield make
    for client in opened:
        client.__exit__(None, None, None)


def test_a_healthy_glint_answers_ok_without_identity(make_client: Callable[..., TestClient]
                                                     ) -> None:
    client = make_client(default_project_id="")  # requests without identity would be 401
    response = client.get("/healthcheck")
    assert (response.status_code, response.text) == (200, "OK")
    assert response.headers["content-type"].startswith("text/plain")
    assert response.headers["x-openstack-request-id"].startswith("req-")
    assert client.head("/healthcheck").status_code == 200


def test_a_database_behind_this_glints_revision_is_unhealthy(
        make_client: Callable[..., TestClient]) -> None:
    client = make_client(migrated=False)  # tables made, no Alembic revision
    response = client.get("/healthcheck")
    assert response.status_code == 503
    assert response.text.startswith("database: RuntimeError: database at revision None, this "
                                    f"glint needs {migrate.head()}: run `glint db upgrade`")


def test_a_store_that_refuses_writes_is_unhealthy(make_client: Callable[..., TestClient]
                                                  ) -> None:
    client = make_client(store=ReadOnlyStore())
    response = client.get("/healthcheck")
    assert response.status_code == 503
    assert "store: OSError: [Errno 30] Read-only file system" in response.text


def test_a_disable_file_takes_it_out_of_rotation(make_client: Callable[..., TestClient],
                                                 tmp_path: pathlib.Path) -> None:
    flag = tmp_path / "maintenance"
    client = make_client(healthcheck_disable_file=flag)
    assert client.get("/healthcheck").status_code == 200
    flag.touch()
    response = client.get("/healthcheck")
    assert (response.status_code, response.text) == (503, "DISABLED BY FILE")


def test_the_detailed_view_is_for_admins(make_client: Callable[..., TestClient]) -> None:
    client = make_client()
    accept = {"Accept": "application/json"}
    assert client.get("/healthcheck", headers={**PROJECT_A, **accept}).status_code == 403
    response = client.get("/healthcheck", headers={**ADMIN, **accept})
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert set(body["checks"]) == {"database", "store", "reaper"}
    assert body["checks"]["database"] == {"ok": True, "detail": f"revision {migrate.head()}",
                                          "milliseconds": body["checks"]["database"]
                                          ["milliseconds"]}
    assert body["checks"]["store"]["detail"] == "1 writable"


def test_the_broker_is_checked_when_an_executor_needs_one(tmp_path: pathlib.Path) -> None:
    # A port nothing listens on: the check fails, quickly, naming the error.
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    check = health.broker_check(f"amqp://guest:guest@127.0.0.1:{port}//", timeout=1)
    result = health.Health({"broker": check}).report()
    assert not result.ok
    assert result.checks[0].detail.startswith("OperationalError")


def test_results_are_kept_briefly_and_the_reaper_is_judged_by_its_passes() -> None:
    now = [100.0]
    calls: list[int] = []

    def counted() -> str:
        calls.append(1)
        return "fine"

    last_pass: list[float | None] = [None]
    checks = health.Health({"counted": counted, "reaper": health.reaper_check(
        lambda: last_pass[0], lambda: True, 15, clock=lambda: now[0])}, clock=lambda: now[0])
    assert checks.report().text() == "reaper: RuntimeError: the reaper has not run yet"
    last_pass[0] = 99.0
    assert checks.report().text() == "reaper: RuntimeError: the reaper has not run yet"  # kept
    now[0] += health.CACHE_SECONDS
    assert checks.report().ok
    assert len(calls) == 2
    now[0] += 60
    assert checks.report().text() == ("reaper: RuntimeError: the reaper last ran 63 s ago "
                                      "(interval 15 s)")


def test_the_workers_port_answers_the_same(tmp_path: pathlib.Path) -> None:
    checks = health.Health({"database": lambda: "revision x"}, tmp_path / "off")
    server = health.serve(checks, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.server_address[1]}/healthcheck"
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            assert (response.status, response.read()) == (200, b"OK")
        request = urllib.request.Request(url, headers={"Accept": "application/json"})
        with urllib.request.urlopen(request, timeout=5) as response:
            assert json.loads(response.read())["checks"]["database"]["detail"] == "revision x"
        (tmp_path / "off").touch()
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(url, timeout=5)
        assert (refused.value.code, refused.value.read()) == (503, b"DISABLED BY FILE")
    finally:
        server.shutdown()
        server.server_close()
