"""The SQLite engine's settings: what each connection is set to before glint uses it."""

from __future__ import annotations

import pathlib
import threading

import pytest
import sqlalchemy as sa
from sqlalchemy import event

from glint.db import engine, models


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


def test_a_failed_begin_raises_as_sqlalchemy_raises_it(tmp_path: pathlib.Path) -> None:
    db = engine.Database(f"sqlite:///{tmp_path / 'glint.db'}")
    with db.engine.connect() as connection:
        connection.connection.driver_connection.execute("BEGIN")  # type: ignore[union-attr]
        with pytest.raises(sa.exc.OperationalError, match="within a transaction") as raised:
            connection.begin()
        assert raised.value.statement == "BEGIN IMMEDIATE"
    db.dispose()


def test_a_row_read_through_core_is_detached_with_every_column_loaded() -> None:

    row = {column.key: None for column in models.Task.__table__.columns}
    row.update(id="t1", type="noop", status="pending", lease_token=3)
    task = models.detached(models.Task, row)
    state = sa.inspect(task)
    assert state.detached and state.identity == ("t1",)
    assert not state.modified and not state.expired_attributes
    assert (task.id, task.type, task.status, task.lease_token, task.result) == (
        "t1", "noop", "pending", 3, None)


def test_a_write_after_a_failed_commit_starts_afresh(tmp_path: pathlib.Path) -> None:
    db = engine.Database(f"sqlite:///{tmp_path / 'glint.db'}")
    with db.connection() as connection:
        connection.exec_driver_sql("CREATE TABLE parent (n INTEGER PRIMARY KEY)")
        connection.exec_driver_sql(  # checked at COMMIT: the commit itself fails
            "CREATE TABLE child (n INTEGER REFERENCES parent (n) DEFERRABLE INITIALLY DEFERRED)")
    with pytest.raises(sa.exc.IntegrityError), db.connection() as connection:
        connection.exec_driver_sql("INSERT INTO child VALUES (1)")
    with db.connection() as connection:
        connection.exec_driver_sql("INSERT INTO parent VALUES (1)")
        connection.exec_driver_sql("INSERT INTO child VALUES (1)")
    with db.reader() as session:
        assert session.execute(sa.text("SELECT count(*) FROM child")).scalar() == 1
    db.dispose()
