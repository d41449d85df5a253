"""The ``glint`` command, driven through click's test runner on a temporary SQLite database."""

from __future__ import annotations

import datetime
import importlib.util
import pathlib
import sys
import textwrap
import types
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from glint.db import engine, migrate, models
from tests.unit.cli_support import database, run, workdir  # noqa: F401  (workdir is a fixture)

# workdir is autouse: each test runs in an empty directory of its own, tmp_path.

NAMESPACE = "glint.task_scripts"


@pytest.mark.parametrize("args", [[], ["serve"], ["db"], ["db", "upgrade"], ["db", "current"],
                                  ["db", "purge"], ["db", "load-metadefs"],
                                  ["db", "export-metadefs"], ["scripts"], ["task"],
                                  ["task", "list"], ["task", "show"], ["task", "cancel"],
                                  ["task", "retry"]])
def test_every_command_has_help(args: list[str]) -> None:
    result = run(*args, "--help")
    assert result.exit_code == 0
    assert result.output.startswith("Usage: ")


def test_version() -> None:
    result = run("--version")
    assert (result.exit_code, result.output.strip()) == (0, "glint, version 0.1.0")


def test_db_upgrade_then_current(tmp_path: pathlib.Path) -> None:
    result = run("db", "current")
    assert result.exit_code == 0
    assert "revision none" in result.output and "needs `glint db upgrade`" in result.output
    result = run("db", "upgrade")
    assert result.exit_code == 0
    head = migrate.head()
    assert f"upgraded from an empty database to {head}" in result.output
    assert migrate.current(database(tmp_path)) == head
    assert f"already at revision {head}" in run("db", "upgrade").output
    assert f"revision {head} (head {head}, up to date)" in run("db", "current").output


def test_an_unknown_revision_is_one_line() -> None:
    result = run("db", "upgrade", "--revision", "nope")
    assert result.exit_code == 1
    assert result.stderr == "Error: Can't locate revision identified by 'nope'\n"


def test_db_purge_deletes_expired_tasks(tmp_path: pathlib.Path) -> None:
    assert run("db", "upgrade").exit_code == 0
    db = engine.Database(database(tmp_path))
    now = models.utcnow()
    with db.session() as session:
        for expires in (now - datetime.timedelta(hours=1), now + datetime.timedelta(hours=1), None):
            session.add(models.Task(id=str(uuid.uuid4()), type="echo", status="success",
                                    owner="p", message="", context={}, expires_at=expires))
    result = run("db", "purge")
    assert (result.exit_code, result.output) == (0, "purged 1 expired task\n")
    assert run("db", "purge").output == "purged 0 expired tasks\n"
    with db.reader() as session:
        assert session.query(models.Task).count() == 2
    db.dispose()


def test_db_purge_needs_a_migrated_database() -> None:
    result = run("db", "purge")
    assert result.exit_code == 2
    assert "run `glint db upgrade`" in result.stderr


@pytest.mark.parametrize(("env", "expected"), [
    ({"GLINT_BIND_PORT": "99999"}, "invalid setting bind_port (GLINT_BIND_PORT): Input should be"),
    ({"GLINT_EXECUTOR_THREADS": "many"}, "invalid setting executor_threads"),
    ({"GLINT_IMPORT_ALLOWED_HOSTS": "not json"}, "GLINT_IMPORT_ALLOWED_HOSTS"),
    ({"GLINT_DATABASE_URL": "mysql://db/glint"}, "unsupported database 'mysql'"),
    ({"GLINT_DATABASE_URL": "not a url"}, "invalid setting database_url (GLINT_DATABASE_URL)"),
    ({"GLINT_CONFIG": "/no/such/glint.toml"}, "$GLINT_CONFIG names /no/such/glint.toml"),
])
def test_a_bad_setting_is_one_line_and_exit_2(env: dict[str, str], expected: str) -> None:
    result = run("db", "upgrade", **env)
    assert result.exit_code == 2
    assert expected in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.output


def test_bad_settings_files_are_reported(tmp_path: pathlib.Path) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text("bind_port = \n")
    result = run("db", "current", GLINT_CONFIG=str(broken))
    assert result.exit_code == 2 and "is not valid TOML" in result.stderr
    unknown = tmp_path / "unknown.toml"
    unknown.write_text('colour = "blue"\n')
    result = run("db", "current", GLINT_CONFIG=str(unknown))
    assert result.exit_code == 2
    assert result.stderr.strip() == (f"Error: unknown setting colour in the settings file {unknown} "
                                     "(the README lists the settings)")
    assert "GLINT_COLOUR" not in result.stderr  # no such variable was ever set


def test_a_bad_value_in_the_settings_file_names_the_file(tmp_path: pathlib.Path) -> None:
    config = tmp_path / "glint.toml"
    config.write_text("bind_port = 99999\n")
    result = run("db", "current", GLINT_CONFIG=str(config))
    assert result.exit_code == 2
    assert f"invalid setting bind_port (in the settings file {config}): Input" in result.stderr
    result = run("db", "current", GLINT_CONFIG=str(config), GLINT_BIND_PORT="70000")
    assert "invalid setting bind_port (GLINT_BIND_PORT): Input" in result.stderr  # env wins


def test_a_bad_plugin_name_is_a_setting_error(tmp_path: pathlib.Path) -> None:
    assert run("db", "upgrade").exit_code == 0
    result = run("serve", GLINT_STORE="floppy")
    assert result.exit_code == 2
    assert "no store named 'floppy'" in result.stderr


def test_an_unreachable_database_is_one_line() -> None:
    result = run("db", "current", GLINT_DATABASE_URL="postgresql://nobody@127.0.0.1:1/glint")
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: cannot use the database postgresql")
    assert len(result.stderr.strip().splitlines()) == 1


# -- serve --------------------------------------------------------------------------------


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Replace uvicorn's serving loop and the API factory; record what serve hands over."""
    import uvicorn

    calls: list[Any] = []
    fake_api = types.ModuleType("glint.api.app")

    def create_app(glint: Any, manage_lifecycle: bool = True) -> Any:
        calls.append(glint)
        return "the-asgi-app"

    fake_api.create_app = create_app  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "glint.api.app", fake_api)

    def fake_run(server: uvicorn.Server, sockets: Any = None) -> None:
        calls.append(server.config)
        calls[0].close(timeout=1)
        server.started = True

    monkeypatch.setattr(uvicorn.Server, "run", fake_run)
    return calls


def test_serve_refuses_an_unmigrated_database(served: list[Any]) -> None:
    result = run("serve")
    assert result.exit_code == 2
    assert f"is at revision none, this glint needs {migrate.head()}" in result.stderr
    assert served == []


def test_serve_migrates_when_asked_and_serves(served: list[Any], tmp_path: pathlib.Path) -> None:
    result = run("serve", "--migrate", "--host", "127.0.0.2", "--port", "9999",
                 GLINT_EXECUTOR="inline")
    assert result.exit_code == 0, result.output
    glint, config = served
    assert (glint.settings.bind_host, glint.settings.bind_port) == ("127.0.0.2", 9999)
    assert (config.host, config.port, config.app, config.lifespan) == (
        "127.0.0.2", 9999, "the-asgi-app", "on")
    assert migrate.current(database(tmp_path)) == migrate.head()


def test_serve_uses_the_settings_for_host_and_port(served: list[Any]) -> None:
    assert run("db", "upgrade").exit_code == 0
    result = run("serve", GLINT_BIND_HOST="127.0.0.3", GLINT_BIND_PORT="8080")
    assert result.exit_code == 0, result.output
    assert (served[1].host, served[1].port) == ("127.0.0.3", 8080)


# -- multi-store over a single store's images -----------------------------------------------


def _single_store_image(tmp_path: pathlib.Path) -> str:
    """An active image uploaded by a glint with the one (filesystem) store, as before
    enabled_backends was set; returns its id."""
    from glint import app, settings
    from glint.context import RequestContext

    assert run("db", "upgrade").exit_code == 0
    glint = app.build(settings.load(), executor="inline")
    ctx = RequestContext(user_id="u", project_id="p", roles=("admin",))
    try:
        image = glint.images.create(ctx, {"disk_format": "raw", "container_format": "bare"})
        glint.uploads.upload(ctx, image.id, [b"old bytes"], expected_size=None)
    finally:
        glint.close(timeout=1)
    assert (tmp_path / "data" / "images" / image.id).is_file()
    return image.id


MULTI = {"GLINT_ENABLED_BACKENDS": '{"fast": "filesystem", "cheap": "filesystem"}',
         "GLINT_EXECUTOR": "inline"}


def test_multi_store_over_single_store_images_is_refused_with_the_fix(
        served: list[Any], tmp_path: pathlib.Path) -> None:
    _single_store_image(tmp_path)
    result = run("serve", **MULTI)
    assert result.exit_code == 2, result.output
    old = (tmp_path / "data" / "images").resolve()
    assert result.stderr.startswith("Error: 1 image stored before enabled_backends was set is "
                                    f"in the old store {old}, but the default backend 'fast' "
                                    f"reads {old / 'fast'}")
    assert f'backend_paths = {{fast = "{old}"}}' in result.stderr
    assert served == []
    # The fix as named: the image is readable from the default backend, and serve starts.
    result = run("serve", **MULTI, GLINT_BACKEND_PATHS=f'{{"fast": "{old}"}}')
    assert result.exit_code == 0, result.output


def test_a_worker_is_refused_too(tmp_path: pathlib.Path) -> None:
    _single_store_image(tmp_path)
    result = run("worker", **{**MULTI, "GLINT_BROKER_URL": "memory://"})
    assert result.exit_code == 2, result.output
    assert "backend_paths = {fast = " in result.stderr


def test_multi_store_starts_when_the_old_images_were_moved(
        served: list[Any], tmp_path: pathlib.Path) -> None:
    image_id = _single_store_image(tmp_path)
    images = tmp_path / "data" / "images"
    (images / "fast").mkdir()
    (images / image_id).rename(images / "fast" / image_id)
    assert run("serve", **MULTI).exit_code == 0


# -- scripts ------------------------------------------------------------------------------

SCRIPTS = {
    "cli_good_script": '''
        DESCRIPTION = "Copies an image somewhere nice"
        def main(ctx):
            return {}
    ''',
    "cli_mainless_script": "VALUE = 1\n",
}


@pytest.fixture
def third_party(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """An installed distribution registering a good and a broken task script."""
    site = tmp_path / "site"
    site.mkdir()
    for name, source in SCRIPTS.items():
        (site / f"{name}.py").write_text(textwrap.dedent(source))
    dist = site / "acme_scripts-2.0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-scripts\nVersion: 2.0.1\n")
    (dist / "entry_points.txt").write_text(
        f"[{NAMESPACE}]\nacme-copy = cli_good_script\nacme-broken = cli_mainless_script\n"
        "acme-missing = cli_no_such_module\n")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # stevedore's entry-point cache
    yield
    for name in SCRIPTS:
        sys.modules.pop(name, None)


def test_scripts_lists_served_and_broken_scripts(third_party: None) -> None:
    result = run("scripts")
    assert result.exit_code == 1  # a broken script fails the deploy check
    rows = {line.split()[0]: line.split(maxsplit=4) for line in result.output.splitlines()}
    assert rows["TYPE"][:4] == ["TYPE", "PACKAGE", "VERSION", "STATUS"]
    assert rows["acme-copy"] == ["acme-copy", "acme-scripts", "2.0.1", "ok",
                                 "Copies an image somewhere nice"]
    broken = rows["acme-broken"]
    assert broken[:2] == ["acme-broken", "acme-scripts"]
    assert "broken" in broken and "no callable 'main(ctx)'" in result.output
    missing = rows["acme-missing"]
    assert "broken" in missing and "No module named 'cli_no_such_module'" in missing[-1]


def test_scripts_lists_the_built_in_import_script() -> None:
    result = run("scripts")
    assert result.exit_code == 0
    rows = {line.split()[0]: line.split() for line in result.output.splitlines()}
    assert rows["import"][1] == "glint"
    if importlib.util.find_spec("glint.scripts.web_import") is not None:
        assert rows["import"][3] == "ok"


@pytest.mark.parametrize("workers", [1, 2])
def test_serve_sends_downloads_with_sendfile_with_one_api_worker_or_several(workers: int) -> None:
    from uvicorn.importer import import_from_string

    from glint.server import processes
    from glint.server.header_limits import HeaderLimitsProtocol
    from glint.server.sendfile import SendfileProtocol
    from glint.settings import Settings

    config = processes.uvicorn_config_for("app:factory", Settings(api_workers=workers), "info",
                                          False)
    protocol = import_from_string(config.http)
    assert issubclass(protocol, SendfileProtocol) and issubclass(protocol, HeaderLimitsProtocol)
    assert config.workers == workers


def test_api_workers_do_not_share_a_port_in_use() -> None:
    """Each API worker binds with SO_REUSEPORT, which would join any other socket bound so:
    the port is checked without it first."""
    import socket

    assert run("db", "upgrade").exit_code == 0
    with socket.socket() as taken:
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run("serve", "--port", str(port), "--workers", "2")
    assert result.exit_code == 1, result.output
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr


def test_each_api_worker_gets_a_socket_of_its_own_bound_in_its_process() -> None:
    import pickle
    import socket

    from glint.server import processes
    from glint.settings import Settings

    config = processes.uvicorn_config_for("app:factory", Settings(api_workers=2, bind_port=0),
                                          "info", False)
    [recipe] = processes.listening_sockets(config, processes.free_port("127.0.0.1", 0))
    assert not isinstance(recipe, socket.socket)  # the supervisor holds no listening socket
    first, second = pickle.loads(pickle.dumps(recipe)), pickle.loads(pickle.dumps(recipe))
    try:
        assert first.getsockname() == second.getsockname() != ("127.0.0.1", 0)
        assert first.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT)
    finally:
        first.close()
        second.close()


@pytest.mark.parametrize("workers", ["1", "2"])
def test_serve_on_a_port_in_use_stops_before_recovery_touches_anything(
        tmp_path: pathlib.Path, workers: str) -> None:
    """Another glint serve of this node may hold the port: its running tasks are not failed."""
    import socket

    assert run("db", "upgrade").exit_code == 0
    db = engine.Database(database(tmp_path))
    task_id = str(uuid.uuid4())
    with db.session() as session:
        session.add(models.Task(id=task_id, type="echo", status="processing", owner="p",
                                message="", context={}, lease_owner="node:1:other"))
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = run("serve", "--port", str(port), "--workers", workers)
    assert result.exit_code == 1, result.output
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    with db.reader() as session:
        assert session.get(models.Task, task_id).status == "processing"
    db.dispose()
