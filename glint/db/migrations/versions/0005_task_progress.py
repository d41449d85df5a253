"""Task progress: what a running script last reported, as data (``done``, ``total``,
``percent``), beside the ``message`` that says it in words.

Revision ID: 0005_task_progress
Revises: 0004_metadefs
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_task_progress"
down_revision: str | None = "0004_metadefs"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(sa.Column("progress", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("progress")
