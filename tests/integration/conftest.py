"""Integration fixtures: every test here runs on a real PostgreSQL and on SQLite.

A throwaway database ``glint_it_<random>`` is created on the server named by
``$GLINT_TEST_POSTGRES_URL`` (default: the local server, trust auth) for the session and dropped
at its end; each test gets an empty ``public`` schema. Outside CI an unreachable server skips the
PostgreSQL half; with ``CI`` set it fails, so CI never passes without PostgreSQL.
"""

from __future__ import annotations

import os
import pathlib
import secrets
import subprocess
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from glint import app
from glint import settings as settings_mod
from glint.db import migrate
from glint.notifiers.memory import MemoryNotifier
from glint.scripts.registry import Registry
from glint.stores.memory import MemoryStore
from tests.conftest import MakeGlint
from tests.tools import unavailable

SERVER_ENV = "GLINT_TEST_POSTGRES_URL"
DEFAULT_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
HERE = pathlib.Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in pathlib.Path(str(item.path)).parents:
            item.add_marker(pytest.mark.integration)


def _admin_engine(server: sa.URL) -> sa.Engine:
    """An autocommit engine on the server's ``test`` database, or ``postgres`` if that is absent."""
    problems = []
    for database in dict.fromkeys([server.database or "test", "test", "postgres"]):
        engine = sa.create_engine(server.set(database=database), isolation_level="AUTOCOMMIT",
                                  poolclass=sa.NullPool)
        try:
            with engine.connect():
                return engine
        except sa.exc.OperationalError as exc:
            problems.append(str(exc.orig).strip().splitlines()[0])
            engine.dispose()
    message = f"PostgreSQL at {server.render_as_string()} is unreachable: {'; '.join(problems)}"
    unavailable(message)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """The URL of a fresh database created for this test session, dropped at its end."""
    server = sa.make_url(os.environ.get(SERVER_ENV, DEFAULT_SERVER))
    if server.drivername == "postgresql":
        server = server.set(drivername="postgresql+psycopg")
    admin = _admin_engine(server)
    name = f"glint_it_{secrets.token_hex(6)}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def _reset_schema(url: str) -> None:
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    with engine.begin() as conn:
        conn.exec_driver_sql("SET LOCAL lock_timeout = '10s'")
        conn.exec_driver_sql("DROP SCHEMA public CASCADE")
        conn.exec_driver_sql("CREATE SCHEMA public")
    engine.dispose()


@pytest.fixture(params=["postgresql", "sqlite"])
def database_url(request: pytest.FixtureRequest, tmp_path: pathlib.Path) -> Iterator[str]:
    """Overrides tests/conftest.py: an empty database, PostgreSQL first, then SQLite."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'glint.db'}"
        return
    url: str = request.getfixturevalue("postgres_url")
    _reset_schema(url)
    yield url


@pytest.fixture
def backend(database_url: str) -> str:
    """``postgresql`` or ``sqlite``: which engine this run of the test uses."""
    return sa.make_url(database_url).get_backend_name()


@pytest.fixture
def make_glint(make_settings: Callable[..., settings_mod.Settings],
               database_url: str) -> Iterator[MakeGlint]:
    """Overrides tests/conftest.py: the schema comes from the migrations, not create_all."""
    built: list[app.Glint] = []
    migrate.upgrade(database_url)

    def make(*, registry: Registry | None = None, executor: str = "inline",
             store: Any = None, notifier: Any = None, **overrides: Any) -> app.Glint:
        # Any: MemoryWriter does not yet satisfy the StoreWriter protocol for mypy.
        chosen_store: Any = store if store is not None else MemoryStore()
        glint = app.build(make_settings(**overrides), store=chosen_store,
                          notifier=notifier if notifier is not None else MemoryNotifier(),
                          registry=registry, executor=executor)
        built.append(glint)
        return glint

    yield make
    for glint in built:
        glint.close(timeout=10)


# -- a real OpenStack Swift (and its S3 API) for the object stores ---------------------------

ROOT = HERE.parents[1]


def start_swift_script() -> pathlib.Path | None:
    """shared/tools/swift/start-swift: beside the repository (CI) or at $GLINT_START_SWIFT."""
    for candidate in (os.environ.get("GLINT_START_SWIFT"),
                      ROOT.parent / "shared/tools/swift/start-swift",
                      pathlib.Path("/work/shared/tools/swift/start-swift")):
        if candidate and pathlib.Path(candidate).is_file():
            return pathlib.Path(candidate)
    return None


@pytest.fixture(scope="session")
def swift_env() -> dict[str, str]:
    """The ``GLINT_SWIFT_*``/``GLINT_S3_*`` variables of the local Swift (started if down, as
    ``make services`` does). Outside CI a missing Swift skips; in CI it fails."""
    script = start_swift_script()
    problem = "start-swift not found (shared/tools/swift beside the repository)"
    if script is not None:
        run = subprocess.run(["bash", str(script), "start"], capture_output=True, text=True,
                             timeout=120, check=False)
        if run.returncode == 0:
            return dict(line.removeprefix("export ").split("=", 1)
                        for line in run.stdout.splitlines() if line.startswith("export "))
        problem = f"Swift did not start: {run.stderr.strip().splitlines()[-1:]}"
    unavailable(problem)
