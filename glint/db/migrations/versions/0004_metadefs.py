"""Metadata definitions (metadefs): namespaces, their objects, properties, tags, and the
resource types they apply to, seeded with the ones Glance ships.

Revision ID: 0004_metadefs
Revises: 0003_image_stores
Create Date: 2026-12-01
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0004_metadefs"
down_revision: str | None = "0003_image_stores"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The resource types of Glance's own metadefs (etc/metadefs), in Glance's order.
RESOURCE_TYPES = ("OS::Glance::Image", "OS::Cinder::Volume", "OS::Nova::Flavor",
                  "OS::Nova::Aggregate", "OS::Nova::Server", "OS::Trove::Instance")


def _namespace_fk() -> sa.ForeignKey:
    return sa.ForeignKey("metadef_namespaces.id", ondelete="CASCADE")


def _times() -> list[sa.Column[Any]]:
    return [sa.Column("created_at", sa.DateTime(), nullable=False),
            sa.Column("updated_at", sa.DateTime(), nullable=False)]


def _child(table: str, *columns: sa.Column[Any]) -> None:
    """A table of rows named uniquely within one namespace."""
    op.create_table(
        table,
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("namespace_id", sa.Integer(), _namespace_fk(), nullable=False),
        sa.Column("name", sa.String(80), nullable=False),
        *columns,
        *_times(),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("namespace_id", "name"),
    )


def upgrade() -> None:
    op.create_table(
        "metadef_namespaces",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("namespace", sa.String(80), nullable=False),
        sa.Column("display_name", sa.String(80), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("visibility", sa.String(32), nullable=False),
        sa.Column("protected", sa.Boolean(), nullable=False),
        sa.Column("owner", sa.String(255), nullable=False),
        *_times(),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("namespace"),
    )
    op.create_index("ix_metadef_namespaces_owner", "metadef_namespaces", ["owner"])
    _child("metadef_objects",
           sa.Column("description", sa.Text(), nullable=True),
           sa.Column("required", sa.JSON(), nullable=True),
           sa.Column("properties", sa.JSON(), nullable=False))
    _child("metadef_properties", sa.Column("json_schema", sa.JSON(), nullable=False))
    _child("metadef_tags")
    types = op.create_table(
        "metadef_resource_types",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(80), nullable=False),
        sa.Column("protected", sa.Boolean(), nullable=False),
        *_times(),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    op.create_table(
        "metadef_namespace_resource_types",
        sa.Column("namespace_id", sa.Integer(), _namespace_fk(), nullable=False),
        sa.Column("resource_type_id", sa.Integer(),
                  sa.ForeignKey("metadef_resource_types.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("prefix", sa.String(80), nullable=True),
        sa.Column("properties_target", sa.String(80), nullable=True),
        *_times(),
        sa.PrimaryKeyConstraint("namespace_id", "resource_type_id"),
    )
    now = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
    op.bulk_insert(types, [{"name": name, "protected": True, "created_at": now,
                            "updated_at": now} for name in RESOURCE_TYPES])


def downgrade() -> None:
    for table in ("metadef_namespace_resource_types", "metadef_resource_types", "metadef_tags",
                  "metadef_properties", "metadef_objects"):
        op.drop_table(table)
    op.drop_index("ix_metadef_namespaces_owner", table_name="metadef_namespaces")
    op.drop_table("metadef_namespaces")
