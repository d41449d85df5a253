"""An API client over an in-process glint (SQLite, memory store, inline executor)."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from glint import app
from glint.api.app import create_app
from glint.scripts.registry import Registry
from tests.unit.api.support import Echo, Fail, TestClient


@pytest.fixture
def glint(make_glint: Callable[..., app.Glint]) -> app.Glint:
    return make_glint(registry=Registry.of({"echo": Echo, "fail": Fail}))


@pytest.fixture
def client(glint: app.Glint) -> Iterator[TestClient]:
    with TestClient(create_app(glint)) as test_client:
        yield test_client


@pytest.fixture
def make_client(make_glint: Callable[..., app.Glint]) -> Iterator[Callable[..., TestClient]]:
    """A client over a glint built with settings overrides."""
    opened: list[TestClient] = []

    def make(**overrides: Any) -> TestClient:
        built = make_glint(registry=Registry.of({"echo": Echo}), **overrides)
        test_client = TestClient(create_app(built))
        test_client.__enter__()
        opened.append(test_client)
        return test_client

    yield make
    for test_client in opened:
        test_client.__exit__(None, None, None)


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The byte counts ``os.sendfile`` returned, call by call, for sends to a socket (not the
    read-ahead's, to /dev/null)."""
    counts: list[int] = []
    real = os.sendfile

    def counting(out_fd: int, in_fd: int, offset: int | None, count: int) -> int:
        done = real(out_fd, in_fd, offset, count)
        if stat.S_ISSOCK(os.fstat(out_fd).st_mode):
            counts.append(done)
        return done

    monkeypatch.setattr(os, "sendfile", counting)
    return counts
