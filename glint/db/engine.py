"""Engine and session factory for SQLite (WAL) and PostgreSQL (psycopg 3)."""

from __future__ import annotations

import contextlib
import os
import pathlib
import sqlite3
import threading
import time
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event, orm

from glint import errors

BUSY_TIMEOUT = 30.0  # seconds a SQLite writer waits for the write lock, then fails
RECENTLY_USED = 1.0  # seconds: a PostgreSQL connection back in the pool since is not pinged


class Database:
    """One engine and its session factory; ``session()`` is a unit of work.

    On SQLite the write sessions of this process take turns on a lock of this process before
    they ask SQLite for its write lock. SQLite has one writer at a time, and a connection that
    finds the lock taken polls for it, sleeping 1, 2, 5, 10... ms between tries (its busy
    handler): with a dozen threads writing (API requests, task runners) the lock sat free while
    they slept, and tasks/s and their wait were set by those sleeps. Here a waiting thread is
    woken as the lock is released. Other processes (``glint serve --workers``) still meet at
    SQLite's lock. A thread that waited for its turn as long as SQLite's busy timeout goes on
    without it (SQLite's lock still orders the writes): a stuck session delays the others,
    as it did, but hangs none for longer."""

    def __init__(self, url: str) -> None:
        self.url = sa.make_url(url)
        self._open()

    def _open(self) -> None:
        self.engine = _make_engine(self.url)
        self._turns = threading.RLock() if self.is_sqlite else None
        # In-memory SQLite has a database per thread's connection: no connection kept there.
        self._keeps_writer = self.is_sqlite and self.url.database not in (None, "", ":memory:")
        self._kept: tuple[sa.Connection | None, int] = (None, 0)  # _writer's, and its pid
        self._sessions = orm.sessionmaker(self.engine, expire_on_commit=False)
        self._readers = orm.sessionmaker(
            self.engine.execution_options(glint_readonly=True), expire_on_commit=False)

    def after_fork(self) -> None:
        """In a forked child (a ``glint worker --pool prefork`` child): an engine of its own.

        The parent's pool is dropped untouched: its connections are the parent's (psycopg
        does not close a connection in a process other than the one that opened it). Its
        engine is not reused either, as ``dispose(close=False)`` would: the fork copies
        whatever a thread of the parent was doing at that moment, and a thread part-way
        through the engine's first connection leaves the child a dialect never initialised,
        with SQLAlchemy's run-once hook that initialises it already spent (the child's first
        autocommit connection then failed to go back to its pool: ``PGDialect_psycopg``
        has no ``default_isolation_level``). A new engine starts that from the beginning, and
        so does this process's SQLite lock (a copy may be held by a thread that is gone)."""
        self._open()

    @contextlib.contextmanager
    def session(self) -> Iterator[orm.Session]:
        """A session that commits on success and rolls back on error."""
        with self._turn(), self._sessions() as session, session.begin():
            yield session

    @contextlib.contextmanager
    def connection(self) -> Iterator[sa.Connection]:
        """A Core transaction (no ORM session) that commits on success and rolls back on error.

        For a task's hot writes (its insert, claim and end: one statement or two each), where
        a session's unit of work, identity map and ORM-enabled statements cost more CPU than
        the statements themselves. The same turn and the same ``BEGIN IMMEDIATE`` as
        :meth:`session`, the same commit (fsynced on SQLite)."""
        with self._turn() as mine:
            writer = self._writer() if mine else None
            if writer is None:
                with self.engine.begin() as connection:
                    yield connection
                return
            try:
                with writer.begin():
                    yield writer
            except BaseException:
                # SQLite can keep a transaction open past a failed statement or COMMIT (a
                # deferred foreign key): closed, the pool's reset rolls it back, as it did for
                # every write before the connection was kept; the next write takes a new one.
                self._kept = (None, 0)
                writer.close()
                raise

    @contextlib.contextmanager
    def one_statement(self) -> Iterator[sa.Connection]:
        """:meth:`connection` for a write that is *one* SQL statement on PostgreSQL (a task's
        insert, its claim, its end: data-modifying CTEs there).

        On PostgreSQL the statement runs in autocommit: it is its own transaction, as atomic
        and as durable (its commit waits for the WAL flush, ``synchronous_commit``), without
        the ``BEGIN`` and ``COMMIT`` round trips around it (three round trips become one). On
        SQLite, where the same writes are two statements, it is :meth:`connection`. Callers
        must not run a second statement on PostgreSQL: it would commit on its own."""
        if self.is_sqlite:
            with self.connection() as connection:
                yield connection
            return
        with self.engine.connect() as connection:
            yield connection.execution_options(isolation_level="AUTOCOMMIT")

    @contextlib.contextmanager
    def _turn(self) -> Iterator[bool]:
        """This thread's turn to write, on SQLite (see the class); whether it got it."""
        if self._turns is None:
            yield False
            return
        mine = self._turns.acquire(timeout=BUSY_TIMEOUT)
        try:
            yield mine
        finally:
            if mine:
                self._turns.release()

    def _writer(self) -> sa.Connection | None:
        """On SQLite, the connection that :meth:`connection` writes through in its turn (None
        when it is in use: a write inside a write of the same thread).

        Writes take turns, so one connection serves them all, kept open between turns: a
        checkout from the pool and a checkin (its reset) were a tenth of a task's CPU in a
        burst (BENCHMARKS.md). It is made again after a fork (a child never writes through
        its parent's connection) or when it was invalidated."""
        writer, pid = self._kept
        if not self._keeps_writer or (writer is not None and writer.in_transaction()):
            return None
        # (A new engine, after_fork's, comes with ``_kept`` emptied: no engine check here.)
        if writer is None or pid != os.getpid() or writer.invalidated or writer.closed:
            writer = self.engine.connect()
            self._kept = (writer, os.getpid())
        return writer

    @contextlib.contextmanager
    def reader(self) -> Iterator[orm.Session]:
        """A session for reads only: on SQLite it does not take the write lock."""
        with self._readers() as session, session.begin():
            yield session

    @property
    def is_sqlite(self) -> bool:
        return self.url.get_backend_name() == "sqlite"

    def dispose(self) -> None:
        with self._turn():  # a write in progress on the kept connection ends first
            writer, pid = self._kept
            if writer is not None and pid == os.getpid():
                writer.close()
            self._kept = (None, 0)
        self.engine.dispose()


def _make_engine(url: sa.URL) -> sa.Engine:
    backend = url.get_backend_name()
    if backend == "sqlite":
        return _sqlite_engine(url)
    if backend == "postgresql":
        if url.drivername == "postgresql":
            url = url.set(drivername="postgresql+psycopg")
        _require("psycopg", "postgresql")
        return _postgresql_engine(url)
    raise errors.ConfigurationError(f"unsupported database {url.drivername!r}: use sqlite or postgresql")


def _postgresql_engine(url: sa.URL) -> sa.Engine:
    """A pool whose connections are checked at checkout when they sat idle (SQLAlchemy's
    pre-ping, but skipped for one back in the pool less than ``RECENTLY_USED`` ago).

    The ping is a round trip: on every checkout it was two of a task's ten (claim and end). A
    connection used a moment ago is alive but for a server gone in that moment, which the
    first statement finds: SQLAlchemy then drops that connection and every older one, as
    pre-ping would have; that one statement fails (its request answers 503, a task's lease
    runs out and the reaper re-queues it)."""
    engine = sa.create_engine(url, pool_size=10, max_overflow=20)

    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info["checked_in"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        if time.monotonic() - record.info.get("checked_in", -RECENTLY_USED) < RECENTLY_USED:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:  # the pool connects afresh (up to three times) and tries again
            raise sa.exc.DisconnectionError(f"connection failed its ping: {exc}") from exc

    return engine


def _sqlite_engine(url: sa.URL) -> sa.Engine:
    if url.database and url.database != ":memory:":
        pathlib.Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(url, connect_args={"check_same_thread": False,
                                                  "timeout": BUSY_TIMEOUT})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take the transaction handling from pysqlite so BEGIN IMMEDIATE works as written.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        if url.database and url.database != ":memory:":
            # Readers never block the writer, in this process or another (API workers share
            # the file); writers wait for each other up to the busy timeout.
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        # FULL: every commit is on disk (the WAL fsynced) before glint answers or reports a
        # task's outcome; NORMAL would lose the last commits to a power cut. About 0.25 ms a
        # commit on an SSD (BENCHMARKS.md).
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT * 1000)}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        # Writers take the lock up front: no deadlock-prone read-to-write upgrades. On the
        # driver's connection: through exec_driver_sql (an execution context, a cursor
        # wrapped) this one statement cost as much CPU as a task's claim (BENCHMARKS.md).
        readonly = conn.get_execution_options().get("glint_readonly", False)
        statement = "BEGIN" if readonly else "BEGIN IMMEDIATE"
        try:
            conn.connection.driver_connection.execute(statement)  # type: ignore[union-attr]
        except sqlite3.Error as exc:  # raised as SQLAlchemy would (OperationalError, ...)
            raise sa.exc.DBAPIError.instance(statement, None, exc, sqlite3.Error) from exc

    return engine


def _require(module: str, extra: str) -> None:
    try:
        __import__(module)
    except ImportError as exc:
        raise errors.ConfigurationError(
            f"this database needs the {module!r} package: pip install 'glint[{extra}]'") from exc
