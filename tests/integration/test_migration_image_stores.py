"""``0003_image_stores``: every image with data gets its location row, in the default store."""

from __future__ import annotations

import sqlalchemy as sa

from glint.db import migrate

IMAGE = ("INSERT INTO images (id, name, status, visibility, protected, os_hidden, min_disk, "
         "min_ram, location, created_at, updated_at, deleted) VALUES ('{id}', 'x', '{status}', "
         "'shared', false, false, 0, 0, {location}, '2026-01-01 00:00:00', "
         "'2026-01-02 00:00:00', {deleted})")


def test_0003_moves_existing_locations_to_rows(database_url: str) -> None:
    migrate.upgrade(database_url, "0002")
    engine = sa.create_engine(database_url, poolclass=sa.NullPool)
    try:
        with engine.begin() as conn:
            for image_id, status, location, deleted in [
                    ("i-active", "active", "'i-active'", "false"),
                    ("i-queued", "queued", "NULL", "false"),
                    ("i-deleted", "deleted", "'i-deleted'", "true")]:
                conn.exec_driver_sql(IMAGE.format(id=image_id, status=status,
                                                  location=location, deleted=deleted))
        migrate.upgrade(database_url, "0003_image_stores")
        with engine.connect() as conn:
            rows = conn.exec_driver_sql(
                "SELECT image_id, store, location, status FROM image_locations").all()
    finally:
        engine.dispose()
    assert [tuple(r) for r in rows] == [("i-active", None, "i-active", "active")]
