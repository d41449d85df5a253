"""Image stores: the stores holding each image's bytes (multi-store), one row per store.

Every image with data gets a row for its ``location``, in the default store (``store`` NULL).

Revision ID: 0003_image_stores
Revises: 0002
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_image_stores"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "image_locations",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("image_id", sa.String(36), nullable=False),
        sa.Column("store", sa.String(255), nullable=True),
        sa.Column("location", sa.String(1024), nullable=False),
        sa.Column("status", sa.String(30), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["image_id"], ["images.id"], ondelete="CASCADE",
                                name=op.f("fk_image_locations_image_id_images")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_image_locations")),
        sa.UniqueConstraint("image_id", "store", name=op.f("uq_image_locations_image_id")),
    )
    op.create_index("ix_image_locations_image_id", "image_locations", ["image_id"])
    op.execute(
        "INSERT INTO image_locations (image_id, store, location, status, created_at) "
        "SELECT id, NULL, location, 'active', updated_at FROM images "
        "WHERE location IS NOT NULL AND deleted = false")


def downgrade() -> None:
    op.drop_index("ix_image_locations_image_id", table_name="image_locations")
    op.drop_table("image_locations")
