"""The Alembic migrations build exactly the schema glint's models declare, on both engines."""

from __future__ import annotations

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from glint.db import migrate, models


def _differences(url: str) -> list[object]:
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            return list(compare_metadata(context, models.Base.metadata))
    finally:
        engine.dispose()


def _schema(url: str) -> str:
    """Every table's columns, indexes and keys, as text (column types compare by identity)."""
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    try:
        inspector = sa.inspect(engine)
        return repr({table: (inspector.get_columns(table), inspector.get_indexes(table),
                             inspector.get_pk_constraint(table),
                             inspector.get_foreign_keys(table))
                     for table in sorted(inspector.get_table_names())})
    finally:
        engine.dispose()


def test_a_fresh_database_has_no_revision(database_url: str) -> None:
    assert migrate.current(database_url) is None
    assert migrate.head() == "0009_task_attempts"


def test_upgrade_builds_what_the_models_declare(database_url: str) -> None:
    migrate.upgrade(database_url)
    assert migrate.current(database_url) == migrate.head()
    assert _differences(database_url) == []


def test_constraint_names_follow_the_naming_convention(database_url: str) -> None:
    migrate.upgrade(database_url)
    engine = sa.create_engine(database_url, poolclass=sa.NullPool)
    inspector = sa.inspect(engine)
    assert inspector.get_pk_constraint("tasks")["name"] in ("pk_tasks", None)  # SQLite: unnamed
    indexes = {ix["name"] for ix in inspector.get_indexes("tasks")}
    assert {"ix_tasks_owner_created", "ix_tasks_status", "ix_tasks_expires_at",
            "ix_tasks_image_id"} <= indexes
    members = {ix["name"] for ix in inspector.get_indexes("image_members")}
    assert {"ix_image_members_image_id", "ix_image_members_member"} <= members
    fks = {fk["name"] for fk in inspector.get_foreign_keys("image_properties")}
    assert fks == {"fk_image_properties_image_id_images"}
    engine.dispose()


def test_upgrading_twice_changes_nothing(database_url: str) -> None:
    migrate.upgrade(database_url)
    before = _schema(database_url)
    migrate.upgrade(database_url)
    assert _schema(database_url) == before
    assert migrate.current(database_url) == migrate.head()


def test_upgrade_to_an_explicit_revision(database_url: str) -> None:
    migrate.upgrade(database_url, "0001")
    assert migrate.current(database_url) == "0001"
    # 0002's columns and index, and what later revisions add
    assert {"add_column", "add_index"} <= {d[0] for d in _differences(database_url)}
    migrate.upgrade(database_url, "0002")
    assert migrate.current(database_url) == "0002"
    migrate.upgrade(database_url)
    assert _differences(database_url) == []


def test_0002_keeps_existing_tasks_and_gives_them_lease_defaults(database_url: str) -> None:
    migrate.upgrade(database_url, "0001")
    engine = sa.create_engine(database_url, poolclass=sa.NullPool)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(
                "INSERT INTO tasks (id, type, status, owner, message, context, attempts, "
                "created_at, updated_at, deleted) VALUES ('t1', 'import', 'pending', 'p', '', "
                "'{}', 0, '2026-01-01 00:00:00', '2026-01-01 00:00:00', false)")
        migrate.upgrade(database_url)
        with engine.connect() as conn:
            row = conn.exec_driver_sql(
                "SELECT max_attempts, lease_token, lease_owner, lease_expires_at, "
                "cancel_requested FROM tasks").one()
    finally:
        engine.dispose()
    assert tuple(row) == (3, 0, None, None, False)


def test_the_comparison_sees_a_missing_index(database_url: str) -> None:
    """Guards the tests above against a comparison that finds nothing whatever the schema."""
    migrate.upgrade(database_url)
    engine = sa.create_engine(database_url, poolclass=sa.NullPool)
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP INDEX ix_tasks_status")
    engine.dispose()
    assert [d[0] for d in _differences(database_url)] == ["add_index"]  # type: ignore[index]
