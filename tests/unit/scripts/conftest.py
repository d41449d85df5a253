"""Fixtures for script tests: a local HTTP server to import from."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.httpserver import LocalServer


@pytest.fixture
def http_server() -> Iterator[LocalServer]:
    """A threaded HTTP server on 127.0.0.1 (an allowed import host in the test settings)."""
    with LocalServer() as server:
        yield server
