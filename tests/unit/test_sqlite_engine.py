"""The SQLite engine's settings: what each connection is set to before glint uses it."""

from __future__ import annotations

import pathlib

import sqlalchemy as sa

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
