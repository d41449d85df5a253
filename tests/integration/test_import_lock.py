"""Concurrent imports of one image on PostgreSQL (and SQLite): exactly one starts a task.

The race of :mod:`tests.import_race`, on the migrated schema. On
PostgreSQL the losers wait on the image row's ``FOR UPDATE`` lock, then read the winner's
committed task (READ COMMITTED: each statement sees the latest commits).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from glint import app
from tests.conftest import MakeGlint
from tests.import_race import TRIALS, held_glint, race
from tests.unit.api.support import CTX_A


@pytest.fixture
def held(make_glint: MakeGlint) -> Iterator[app.Glint]:
    with held_glint(make_glint) as glint:
        yield glint


def test_concurrent_imports_one_wins(held: app.Glint) -> None:
    for _trial in range(TRIALS):
        race(held, CTX_A, racers=6)
