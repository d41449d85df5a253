"""Shared fixtures: an in-process glint on SQLite with the memory store and notifier."""

from __future__ import annotations

import pathlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from glint import app
from glint import settings as settings_mod
from glint.context import RequestContext
from glint.db import models
from glint.notifiers.memory import MemoryNotifier
from glint.scripts.registry import Registry
from glint.stores.memory import MemoryStore

MakeGlint = Callable[..., app.Glint]


@pytest.fixture
def database_url(tmp_path: pathlib.Path) -> str:
    """The database the test's glint uses; integration tests override it with PostgreSQL."""
    return f"sqlite:///{tmp_path / 'glint.db'}"


@pytest.fixture
def make_settings(tmp_path: pathlib.Path, database_url: str) -> Callable[..., settings_mod.Settings]:
    def make(**overrides: Any) -> settings_mod.Settings:
        values: dict[str, Any] = {"data_dir": tmp_path / "data", "database_url": database_url,
                                  "import_allowed_hosts": ("127.0.0.1",)}
        values.update(overrides)
        return settings_mod.Settings(**values)
    return make


@pytest.fixture
def make_glint(make_settings: Callable[..., settings_mod.Settings]) -> Iterator[MakeGlint]:
    """Build a glint (inline executor, memory store and notifier unless told otherwise)."""
    built: list[app.Glint] = []

    def make(*, registry: Registry | None = None, executor: str = "inline",
             store: Any = None, notifier: Any = None, **overrides: Any) -> app.Glint:
        glint = app.build(make_settings(**overrides),
                          store=store if store is not None else MemoryStore(),
                          notifier=notifier if notifier is not None else MemoryNotifier(),
                          registry=registry, executor=executor)
        models.Base.metadata.create_all(glint.db.engine)
        built.append(glint)
        return glint

    yield make
    for glint in built:
        glint.close(timeout=10)


@pytest.fixture
def ctx() -> RequestContext:
    return RequestContext(user_id="user-a", project_id="project-a", roles=("member", "reader"))


@pytest.fixture
def other_ctx() -> RequestContext:
    return RequestContext(user_id="user-b", project_id="project-b", roles=("member", "reader"))


@pytest.fixture
def admin_ctx() -> RequestContext:
    return RequestContext(user_id="admin", project_id="admin-project", roles=("admin", "member"))
