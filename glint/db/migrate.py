"""Applying the Alembic migrations that ship inside the package.

Alembic is configured here in code, so an installed glint needs no ``alembic.ini``: the script
location is the ``glint/db/migrations`` directory next to this module.
"""

from __future__ import annotations

import pathlib

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from glint.db import engine

MIGRATIONS = pathlib.Path(__file__).resolve().parent / "migrations"


def config(url: str | None = None) -> Config:
    """An Alembic configuration for glint's migrations (``url`` only for the alembic CLI)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("path_separator", "os")
    if url is not None:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the database at ``url`` up to ``revision``; a no-op when it is there already."""
    db = engine.Database(url)
    try:
        with db.engine.begin() as connection:
            cfg = config()
            cfg.attributes["connection"] = connection
            command.upgrade(cfg, revision)
    finally:
        db.dispose()


def current(url: str) -> str | None:
    """The revision the database at ``url`` is at, or None when it has never been migrated."""
    db = engine.Database(url)
    try:
        with db.engine.connect() as connection:
            # A read: on SQLite, do not take the write lock.
            connection = connection.execution_options(glint_readonly=True)
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        db.dispose()


def head() -> str | None:
    """The newest revision shipped with this glint."""
    return ScriptDirectory.from_config(config()).get_current_head()
