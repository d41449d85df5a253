"""``create_app``'s lifecycle: start and close the glint it serves, or leave that to the caller."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from glint import app
from glint.api.app import create_app
from tests.unit.api.support import TestClient


@pytest.mark.parametrize("manage", [True, False])
def test_lifespan_starts_and_closes_glint(make_glint: Callable[..., app.Glint],
                                          monkeypatch: pytest.MonkeyPatch, manage: bool) -> None:
    glint = make_glint()
    calls: list[str] = []
    monkeypatch.setattr(glint, "start", lambda: calls.append("start"))
    monkeypatch.setattr(glint, "close", lambda: calls.append("close"))
    with TestClient(create_app(glint, manage_lifecycle=manage)) as client:
        assert client.get("/versions").status_code == 200
        assert calls == (["start"] if manage else [])
    assert calls == (["start", "close"] if manage else [])
