"""The PostgreSQL pool: a connection whose server side is gone is replaced, not used.

glint pings a pooled connection at checkout only when it sat idle for ``RECENTLY_USED``
(glint.db.engine); here its backend is terminated while it sits in the pool.
"""

from __future__ import annotations

import os
import threading
import time
import traceback

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


def test_a_child_forked_during_the_first_connection_gets_a_working_engine(
        postgres_url: str) -> None:
    """A prefork worker's children are forked while the parent's threads use the database: one
    may be part-way through the engine's first connection (the dialect's initialisation).
    The child's engine must work all the same, autocommit statements included (with the
    parent's engine kept, the dialect stayed uninitialised and the first ``one_statement``
    failed going back to the pool: CI, stop 21)."""
    db = engine.Database(postgres_url)
    inside, release = threading.Event(), threading.Event()
    initialize = db.engine.dialect.initialize

    def held_initialize(connection: sa.Connection) -> None:
        inside.set()
        release.wait(10)
        initialize(connection)

    db.engine.dialect.initialize = held_initialize  # type: ignore[method-assign]
    parent_thread = threading.Thread(target=_backend, args=(db,))
    parent_thread.start()
    try:
        assert inside.wait(10), "the first connection did not start"
        pid = os.fork()
        if pid == 0:  # the child: what glint worker's prefork children do, then their writes
            code = 1
            try:
                db.after_fork()
                with db.one_statement() as connection:
                    connection.execute(sa.text("SELECT 1"))
                with db.one_statement() as connection:  # back from the pool, reset
                    connection.execute(sa.text("SELECT 1"))
                _backend(db)
                code = 0
            except BaseException:
                traceback.print_exc()
            finally:
                os._exit(code)
        release.set()
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0, "the child's database calls failed"
        _backend(db)  # the parent's engine is untouched
    finally:
        release.set()
        parent_thread.join()
        db.dispose()
