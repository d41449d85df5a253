"""Concurrent imports of one image on PostgreSQL (and SQLite): exactly one starts a task.

The race of :mod:`tests.unit.security.test_sec_import_lock`, on the migrated schema. On
PostgreSQL the losers wait on the image row's ``FOR UPDATE`` lock, then read the winner's
committed task (READ COMMITTED: each statement sees the latest commits).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from glint import app
from glint.imports import methods as imports
from glint.scripts.registry import Registry
from tests.conftest import MakeGlint
from tests.unit.api.support import CTX_A
from tests.unit.security.test_sec_import_lock import TRIALS, held_imports, race


@pytest.fixture
def held(make_glint: MakeGlint) -> Iterator[app.Glint]:
    gate = threading.Event()
    glint = make_glint(registry=Registry.of({imports.SCRIPT: held_imports(gate)}),
                       executor="thread", executor_threads=2)
    yield glint
    gate.set()


def test_concurrent_imports_one_wins(held: app.Glint) -> None:
    for _trial in range(TRIALS):
        race(held, CTX_A, racers=6)
