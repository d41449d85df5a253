"""A real Keystone for the keystone-mode tests, and users with each persona.

Keystone is the one the conformance script starts (``run_tempest.sh URL keystone``: Keystone 30
from PyPI in its own virtualenv, SQLite, fernet tokens, on 127.0.0.1:5000). When it is not
answering, the fixture starts it with that script (installing it the first time takes minutes).
Outside CI a missing script or a Keystone that will not start skips these tests; in CI it fails.

Each test session makes its own projects and users (random names), so runs do not collide:
``member`` and ``reader`` on project ``a``, ``member`` on project ``b``, ``admin`` on project
``a`` (Keystone's implied roles make admin also member and reader), and a ``service`` user.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import secrets
import subprocess
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from keystoneauth1 import session as ks_session
from keystoneauth1.identity import v3

from glint import app
from glint import settings as settings_mod
from glint.api.app import create_app
from glint.db import models
from glint.notifiers.memory import MemoryNotifier
from glint.scripts.registry import Registry
from glint.stores.memory import MemoryStore
from tests.tools import unavailable
from tests.unit.api.support import Echo, TestClient

KEYSTONE = os.environ.get("GLINT_TEST_KEYSTONE_URL", "http://127.0.0.1:5000")
ADMIN_PASSWORD = os.environ.get("ADMIN_PASSWORD", "tempest-admin-pw")
SERVICE_PASSWORD = os.environ.get("GLANCE_SERVICE_PASSWORD", "glance-service-pw")
# The catalog entry the script keeps; glint's tests do not use it, the conformance run does.
CATALOG_IMAGE_URL = "http://127.0.0.1:9393"
ROOT = pathlib.Path(__file__).resolve().parents[2]


def conformance_script() -> pathlib.Path | None:
    for candidate in (os.environ.get("CONFORMANCE_SCRIPT"),
                      ROOT.parent / "shared/tools/conformance/run_tempest.sh",
                      pathlib.Path("/work/shared/tools/conformance/run_tempest.sh")):
        if candidate and pathlib.Path(candidate).is_file():
            return pathlib.Path(candidate)
    return None


def _answering(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/v3", timeout=5):
            return True
    except OSError:
        return False


@dataclasses.dataclass(frozen=True)
class Persona:
    name: str
    user_id: str
    project_id: str
    password: str
    username: str
    project_name: str

    def token(self) -> str:
        auth = v3.Password(auth_url=f"{KEYSTONE}/v3", username=self.username,
                           password=self.password, user_domain_id="default",
                           project_name=self.project_name, project_domain_id="default")
        return str(ks_session.Session(auth=auth).get_token())


@dataclasses.dataclass(frozen=True)
class Keystone:
    url: str
    admin: ks_session.Session
    personas: dict[str, Persona]

    def unscoped_token(self, persona: str) -> str:
        who = self.personas[persona]
        auth = v3.Password(auth_url=f"{self.url}/v3", username=who.username,
                           password=who.password, user_domain_id="default", unscoped=True)
        return str(ks_session.Session(auth=auth).get_token())


def _admin_session() -> ks_session.Session:
    auth = v3.Password(auth_url=f"{KEYSTONE}/v3", username="admin", password=ADMIN_PASSWORD,
                       user_domain_id="default", project_name="admin",
                       project_domain_id="default")
    return ks_session.Session(auth=auth)


def _create(admin: ks_session.Session, path: str, key: str, body: dict[str, Any]) -> str:
    response = admin.post(f"{KEYSTONE}/v3/{path}", json={key: body})
    return str(response.json()[key]["id"])


def _role_ids(admin: ks_session.Session, names: set[str]) -> dict[str, str]:
    roles = admin.get(f"{KEYSTONE}/v3/roles").json()["roles"]
    found = {role["name"]: role["id"] for role in roles if role["name"] in names}
    for name in names - set(found):
        found[name] = _create(admin, "roles", "role", {"name": name})
    return found


@pytest.fixture(scope="session")
def keystone() -> Iterator[Keystone]:
    if not _answering(KEYSTONE):
        script = conformance_script()
        if script is None:
            unavailable("run_tempest.sh (the conformance script) not found; set "
                         "CONFORMANCE_SCRIPT to start Keystone")
        result = subprocess.run(["bash", str(script), CATALOG_IMAGE_URL, "keystone"],
                                capture_output=True, text=True, timeout=1200, check=False)
        if result.returncode != 0 or not _answering(KEYSTONE):
            unavailable(f"Keystone did not start: {result.stderr[-2000:]}")
    admin = _admin_session()
    roles = _role_ids(admin, {"admin", "member", "reader", "service"})
    tag = secrets.token_hex(4)
    projects = {name: _create(admin, "projects", "project",
                              {"name": f"glint-{name}-{tag}", "domain_id": "default"})
                for name in ("a", "b")}
    project_names = {name: f"glint-{name}-{tag}" for name in projects}
    wanted = {"member": ("a", "member"), "reader": ("a", "reader"), "other": ("b", "member"),
              "admin": ("a", "admin"), "service": ("b", "service")}
    personas = {}
    for name, (project, role) in wanted.items():
        username, password = f"glint-{name}-{tag}", secrets.token_urlsafe(12)
        user_id = _create(admin, "users", "user", {"name": username, "password": password,
                                                   "domain_id": "default"})
        admin.put(f"{KEYSTONE}/v3/projects/{projects[project]}/users/{user_id}/roles/"
                  f"{roles[role]}")
        personas[name] = Persona(name, user_id, projects[project], password, username,
                                 project_names[project])
    try:
        yield Keystone(KEYSTONE, admin, personas)
    finally:
        for persona in personas.values():
            admin.delete(f"{KEYSTONE}/v3/users/{persona.user_id}", raise_exc=False)
        for project_id in projects.values():
            admin.delete(f"{KEYSTONE}/v3/projects/{project_id}", raise_exc=False)


def authtoken_options() -> dict[str, Any]:
    return {"www_authenticate_uri": f"{KEYSTONE}/v3", "auth_url": f"{KEYSTONE}/v3",
            "auth_type": "password", "username": "glance", "password": SERVICE_PASSWORD,
            "project_name": "service", "user_domain_id": "default",
            "project_domain_id": "default"}


@pytest.fixture(scope="module")
def keystone_client(keystone: Keystone,
                    tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """An in-process glint in keystone mode, validating tokens with the real Keystone.

    One per test module: ``auth_token`` caches validated tokens, as it does in a server.
    """
    tmp = tmp_path_factory.mktemp("keystone-glint")
    settings = settings_mod.Settings(data_dir=tmp / "data", database_url=f"sqlite:///{tmp}/g.db",
                                     auth_mode="keystone", keystone_authtoken=authtoken_options())
    built = app.build(settings, store=MemoryStore(), notifier=MemoryNotifier(),
                      registry=Registry.of({"echo": Echo}), executor="inline")
    models.Base.metadata.create_all(built.db.engine)
    try:
        with TestClient(create_app(built)) as client:
            yield client
    finally:
        built.close(timeout=10)


@pytest.fixture(scope="session")
def tokens(keystone: Keystone) -> dict[str, str]:
    """A project-scoped token for each persona (fetched once: Keystone is slow to issue)."""
    return {name: persona.token() for name, persona in keystone.personas.items()}
