"""The SQLite engine's settings: what each connection is set to before glint uses it."""

from __future__ import annotations

import pathlib
import threading

import pytest
import sqlalchemy as sa
from sqlalchemy import event

from glint.db import engine


def test_a_file_database_is_wal_with_every_commit_fsynced(tmp_path: pathlib.Path) -> None:
    db = engine.Database(f"sqlite:///{tmp_path / 'glint.db'}")
    with db.reader() as session:
        pragmas = {name: session.execute(sa.text(f"PRAGMA {name}")).scalar()
                   for name in ("journal_mode", "synchronous", "foreign_keys", "busy_timeout")}
    # synchronous 2 is FULL: the WAL is fsynced at every commit, so what glint reported
    # (an activated image, a task's outcome) survives a power cut.
    assert pragmas == {"journal_mode": "wal", "synchronous": 2, "foreign_keys": 1,
                       "busy_timeout": 30000}


def _table(db: engine.Database) -> None:
    with db.connection() as connection:
        connection.exec_driver_sql("CREATE TABLE t (n INTEGER PRIMARY KEY)")


def _rows(db: engine.Database) -> list[int]:
    with db.reader() as session:
        return list(session.execute(sa.text("SELECT n FROM t ORDER BY n")).scalars())


def test_writes_take_turns_on_one_kept_connection(tmp_path: pathlib.Path) -> None:
    db = engine.Database(f"sqlite:///{tmp_path / 'glint.db'}")
    checkouts: list[object] = []
    event.listen(db.engine, "checkout", lambda *args: checkouts.append(args[0]))
    _table(db)

    def write(first: int) -> None:
        for n in range(first, first + 20):
            with db.one_statement() as connection:
                connection.exec_driver_sql(f"INSERT INTO t VALUES ({n})")

    threads = [threading.Thread(target=write, args=(first,)) for first in (0, 100, 200)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(checkouts) == 1  # not one checkout from the pool a write
    assert len(_rows(db)) == 60
    db.dispose()


def test_a_failed_write_on_the_kept_connection_is_rolled_back(tmp_path: pathlib.Path) -> None:
    db = engine.Database(f"sqlite:///{tmp_path / 'glint.db'}")
    _table(db)
    with pytest.raises(sa.exc.IntegrityError), db.connection() as connection:
        connection.exec_driver_sql("INSERT INTO t VALUES (1)")
        connection.exec_driver_sql("INSERT INTO t VALUES (1)")
    with db.connection() as connection:
        connection.exec_driver_sql("INSERT INTO t VALUES (2)")
    assert _rows(db) == [2]
    db.dispose()


def test_an_invalidated_kept_connection_is_replaced(tmp_path: pathlib.Path) -> None:
    db = engine.Database(f"sqlite:///{tmp_path / 'glint.db'}")
    _table(db)
    with db.connection() as connection:
        kept = connection
    kept.invalidate()
    with db.connection() as connection:
        assert connection is not kept
        connection.exec_driver_sql("INSERT INTO t VALUES (3)")
    assert _rows(db) == [3]
    db.dispose()
