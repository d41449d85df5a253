"""Alembic environment: runs migrations on the connection ``glint.db.migrate`` hands over.

There is no ``alembic.ini`` at run time: :mod:`glint.db.migrate` builds the configuration and
puts an open connection in ``config.attributes["connection"]``. Run from the ``alembic`` command
line instead, the URL comes from ``sqlalchemy.url`` in the configuration.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from glint.db import models

TARGET_METADATA = models.Base.metadata


def _configure(connection: sa.Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=TARGET_METADATA,
        # SQLite cannot ALTER most things in place: batch mode copies the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def _run() -> None:
    config = context.config
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        return
    engine = sa.create_engine(config.get_main_option("sqlalchemy.url") or "")
    with engine.begin() as connection:
        _configure(connection)
    engine.dispose()


if context.is_offline_mode():
    raise SystemExit("glint migrations run online only: use `glint db upgrade`")
_run()
