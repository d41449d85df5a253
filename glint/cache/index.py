"""The cache's index: one SQLite file in the cache directory, one row per cached image.

A row is written just before its file is renamed into place, so a file with no row was never
finished by a fill that glint trusted (the rebuild removes it) and a row with no file is a
fill that stopped between the two steps (the rebuild drops it). Every API worker of a node
shares the file; SQLite's locking keeps their writes apart.
"""

from __future__ import annotations

import contextlib
import dataclasses
import pathlib
import sqlite3
import threading
import time
from collections.abc import Iterator

_SCHEMA = """
CREATE TABLE IF NOT EXISTS cached (
    image_id TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    checksum TEXT NOT NULL,
    mtime_ns INTEGER NOT NULL,
    hits INTEGER NOT NULL DEFAULT 0,
    last_accessed REAL NOT NULL,
    last_modified REAL NOT NULL
)
"""
_COLUMNS = "image_id, size, checksum, mtime_ns, hits, last_accessed, last_modified"


@dataclasses.dataclass(frozen=True)
class Entry:
    """One cached image: its size and md5 as filled, its file's mtime then (any later write
    to the file changes it), and Glance's ``hits``/``last_accessed``/``last_modified``."""

    image_id: str
    size: int
    checksum: str
    mtime_ns: int
    hits: int
    last_accessed: float
    last_modified: float


class Index:
    """The index file, through one connection per process (opening and closing connections
    would checkpoint the WAL, with an fsync, on every download)."""

    def __init__(self, path: pathlib.Path) -> None:
        self.path = path
        self._inherited: sqlite3.Connection | None = None
        self._open()
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            # WAL's NORMAL: a commit waits for no fsync (a crash may lose the last hits; a
            # lost row only makes the rebuild drop that image's file).
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute(_SCHEMA)

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            yield self._db

    def _open(self) -> None:
        self._db = sqlite3.connect(self.path, timeout=30, isolation_level=None,
                                   check_same_thread=False)
        self._lock = threading.Lock()

    def after_fork(self) -> None:
        """In a forked child: a connection of its own (SQLite forbids using one across a
        fork). The parent's is kept, never used or closed: closing it here could checkpoint
        the parent's WAL under it."""
        self._inherited = self._db
        self._open()

    def close(self) -> None:
        self._db.close()

    def add(self, image_id: str, size: int, checksum: str, mtime_ns: int) -> None:
        now = time.time()
        with self._connect() as db:
            db.execute(f"INSERT OR REPLACE INTO cached ({_COLUMNS}) VALUES (?, ?, ?, ?, 0, ?, ?)",
                       (image_id, size, checksum, mtime_ns, now, now))

    def get(self, image_id: str) -> Entry | None:
        with self._connect() as db:
            row = db.execute(f"SELECT {_COLUMNS} FROM cached WHERE image_id = ?",
                             (image_id,)).fetchone()
        return Entry(*row) if row is not None else None

    def hit(self, image_id: str) -> None:
        with self._connect() as db:
            db.execute("UPDATE cached SET hits = hits + 1, last_accessed = ? WHERE image_id = ?",
                       (time.time(), image_id))

    def remove(self, image_id: str) -> None:
        with self._connect() as db:
            db.execute("DELETE FROM cached WHERE image_id = ?", (image_id,))

    def entries(self) -> list[Entry]:
        """Every row, least recently accessed first (the order of eviction)."""
        with self._connect() as db:
            rows = db.execute(f"SELECT {_COLUMNS} FROM cached "
                              "ORDER BY last_accessed, image_id").fetchall()
        return [Entry(*row) for row in rows]

    def total_size(self) -> int:
        with self._connect() as db:
            return int(db.execute("SELECT COALESCE(SUM(size), 0) FROM cached").fetchone()[0])
