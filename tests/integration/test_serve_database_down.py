"""`glint serve` started while its PostgreSQL is unreachable starts anyway and recovers by itself.

The shared PostgreSQL cannot be stopped, so glint reaches it through a loopback TCP proxy
(tests/integration/tcpproxy.py) that starts turned off: every connection is hung up on. glint
must answer ``/versions``, answer 503 where it needs the database, and, once the proxy is
turned on, do its start-up recovery (resume the pending task a previous process left, fail the
one it left processing) and serve normally, without a restart.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import time
from collections.abc import Iterator

import httpx
import pytest
import sqlalchemy as sa

from glint import app
from glint import settings as settings_mod
from glint.context import RequestContext
from glint.db import leases, migrate, models
from glint.tasks import runner as runner_mod
from tests.acceptance.conftest import BIN, Server, free_port
from tests.httpserver import LocalServer
from tests.integration.conftest import _reset_schema
from tests.integration.tcpproxy import TcpProxy
from tests.unit.api.support import PROJECT_A

DATA = os.urandom(64 * 1024)


@pytest.fixture
def database_url(postgres_url: str) -> str:
    _reset_schema(postgres_url)
    migrate.upgrade(postgres_url)
    return postgres_url


@pytest.fixture
def proxy(database_url: str) -> Iterator[TcpProxy]:
    url = sa.make_url(database_url)
    with TcpProxy((url.host or "127.0.0.1", url.port or 5432), enabled=False) as started:
        yield started


def _leftovers(database_url: str, tmp_path: pathlib.Path, source: str) -> tuple[str, str]:
    """What a glint that died left: a pending import and one that was running."""
    settings = settings_mod.Settings(database_url=database_url, data_dir=tmp_path / "old",
                                     import_allowed_hosts=("127.0.0.1",))
    glint = app.build(settings, executor="inline")
    glint.executor.shutdown()  # died between commit and hand-over: tasks stay pending
    ctx = RequestContext(user_id=PROJECT_A["X-User-Id"], project_id=PROJECT_A["X-Project-Id"],
                         roles=("member", "reader"))
    body = {"import_from": source, "import_from_format": "raw",
            "image_properties": {"name": "resumed"}}
    try:
        pending = glint.tasks.create(ctx, "import", body).id
        running = glint.tasks.create(ctx, "import",
                                     {**body, "image_properties": {"name": "cut"}}).id
        with glint.db.session() as session:
            assert leases.claim(session, running, "dead-host:1:x", 90, models.utcnow())
    finally:
        glint.close(timeout=0)
    return pending, running


def _serve(tmp_path: pathlib.Path, database_url: str) -> Server:
    env = {k: v for k, v in os.environ.items() if k != "GLINT_CONFIG"}
    env.update({"GLINT_DATABASE_URL": database_url, "GLINT_DATA_DIR": str(tmp_path / "data"),
                "GLINT_IMPORT_ALLOWED_HOSTS": '["127.0.0.1"]', "GLINT_NOTIFIER": "log",
                "GLINT_STORE": "filesystem"})
    port = free_port()
    log = tmp_path / "glint.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(BIN / "glint"), "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env, stdout=out, stderr=subprocess.STDOUT)
    return Server(f"http://127.0.0.1:{port}", tmp_path / "data", process, log)


def _wait_for(predicate: object, timeout: float, what: str, server: Server) -> None:
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while True:
        try:
            if predicate():
                return
        except httpx.TransportError:
            pass
        assert server.process.poll() is None, server.log.read_text()
        assert time.monotonic() < deadline, f"timed out waiting for {what}:\n{server.log.read_text()}"
        time.sleep(0.1)


def test_serve_starts_without_its_database_and_recovers_when_it_returns(
        database_url: str, proxy: TcpProxy, tmp_path: pathlib.Path) -> None:
    with LocalServer() as source:
        source.serve("/disk.raw", DATA)
        pending, running = _leftovers(database_url, tmp_path, source.url("/disk.raw"))
        proxied = sa.make_url(database_url).set(host="127.0.0.1", port=proxy.port)
        server = _serve(tmp_path, proxied.render_as_string(hide_password=False))
        try:
            api = httpx.Client(base_url=server.url, headers=PROJECT_A, timeout=10)
            _wait_for(lambda: api.get("/versions").status_code == 200, 30, "/versions", server)
            response = api.get(f"/v2/tasks/{pending}")
            assert response.status_code == 503, response.text
            assert "database" in response.text.lower()
            assert api.post("/v2/tasks", json={"type": "import", "input": {}}).status_code in (
                400, 503)  # the input is checked first; nothing is written either way
            time.sleep(1)  # a few recovery attempts fail meanwhile
            assert "cannot use the database" in server.log.read_text()

            proxy.enable()

            def recovered() -> bool:
                tasks = {t: api.get(f"/v2/tasks/{t}").json() for t in (pending, running)}
                return all(t.get("status") in ("success", "failure") for t in tasks.values())

            _wait_for(recovered, 30, "start-up recovery once the database is back", server)
            resumed = api.get(f"/v2/tasks/{pending}").json()
            assert resumed["status"] == "success", resumed
            cut = api.get(f"/v2/tasks/{running}").json()
            assert (cut["status"], cut["message"]) == ("failure", runner_mod.INTERRUPTED)
            image = api.get(f"/v2/images/{resumed['result']['image_id']}").json()
            assert image["status"] == "active" and image["size"] == len(DATA)

            created = api.post("/v2/tasks", json={"type": "import", "input": {
                "import_from": source.url("/disk.raw"), "import_from_format": "raw",
                "image_properties": {"name": "new"}}})
            assert created.status_code == 201, created.text
            _wait_for(lambda: api.get(f"/v2/tasks/{created.json()['id']}").json()["status"]
                      == "success", 30, "a new task to run", server)
            api.close()
        finally:
            assert server.stop() == 0
