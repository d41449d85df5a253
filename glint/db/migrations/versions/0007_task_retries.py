"""Task retries outside the worker's slot: a run that raised ``TransientError`` re-queues its
task (``pending``) with ``retries`` one more and ``retry_at`` the end of its backoff, before
which no runner claims it.

Revision ID: 0007_task_retries
Revises: 0006_task_bound_to
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_task_retries"
down_revision: str | None = "0006_task_bound_to"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(sa.Column("retries", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("retry_at", sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("retry_at")
        batch.drop_column("retries")
