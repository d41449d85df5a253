"""What the ``celery`` executor's run needs beyond glint: a broker and a shared database.

Both are optional: when Celery is not installed, the broker does not answer, or PostgreSQL
does not, the celery run is skipped with a note saying which.
"""

from __future__ import annotations

import contextlib
import importlib
import secrets
from collections.abc import Iterator
from importlib import metadata
from typing import Any

import sqlalchemy as sa


def _kombu() -> Any:
    return importlib.import_module("kombu")  # untyped; an extra of glint's


class Unavailable(Exception):
    """A service the celery run needs does not answer."""


def celery_missing(broker_url: str) -> str | None:
    """Why the celery run cannot happen, or None when it can."""
    if not metadata.entry_points(group="glint.executors", name="celery"):
        return "glint has no `celery` executor (entry point glint.executors:celery)"
    try:
        kombu = _kombu()
    except ImportError:
        return "Celery is not installed (pip install 'glint[celery]')"
    try:
        with kombu.Connection(broker_url, connect_timeout=3) as connection:
            connection.ensure_connection(max_retries=1)
    except Exception as exc:
        return f"the broker {broker_url} does not answer: {exc}"
    return None


@contextlib.contextmanager
def postgres_database(server_url: str) -> Iterator[str]:
    """A new, empty database on ``server_url``'s server for this run; dropped afterwards."""
    admin = sa.create_engine(server_url, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    name = f"glint_bench_{secrets.token_hex(4)}"
    try:
        try:
            with admin.connect() as conn:
                conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        except sa.exc.OperationalError as exc:
            reason = str(exc.orig or exc).strip().splitlines()[0]
            raise Unavailable(f"PostgreSQL does not answer ({reason})") from exc
        try:
            yield sa.make_url(server_url).set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as conn:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        admin.dispose()


def delete_queue(broker_url: str, name: str) -> None:
    kombu = _kombu()

    with contextlib.suppress(Exception), kombu.Connection(broker_url, connect_timeout=3) as conn:
        kombu.Queue(name, kombu.Exchange(name, type="direct"), routing_key=name)(
            conn.default_channel).delete()
