"""The PostgreSQL pool: a connection whose server side is gone is replaced, not used.

glint pings a pooled connection at checkout only when it sat idle for ``RECENTLY_USED``
(glint.db.engine); here its backend is terminated while it sits in the pool.
"""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa

from glint.db import engine


def _backend(db: engine.Database) -> int:
    with db.reader() as session:
        return int(session.execute(sa.text("SELECT pg_backend_pid()")).scalar_one())


def _terminate(url: str, pid: int) -> None:
    other = engine.Database(url)
    try:
        with other.reader() as session:
            session.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    finally:
        other.dispose()


def test_an_idle_connection_whose_backend_died_is_replaced_at_checkout(postgres_url: str) -> None:
    db = engine.Database(postgres_url)
    try:
        dead = _backend(db)
        _terminate(postgres_url, dead)
        time.sleep(engine.RECENTLY_USED + 0.1)
        assert _backend(db) != dead  # the ping found it dead; no statement failed
    finally:
        db.dispose()


def test_a_connection_used_a_moment_ago_fails_once_then_the_pool_recovers(
        postgres_url: str) -> None:
    db = engine.Database(postgres_url)
    try:
        dead = _backend(db)
        _terminate(postgres_url, dead)
        with pytest.raises(sa.exc.OperationalError):
            _backend(db)
        assert _backend(db) != dead
    finally:
        db.dispose()
