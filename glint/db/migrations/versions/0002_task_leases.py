"""Task leases: lease owner, fencing token and expiry, attempt limit, cancel requests.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(sa.Column("max_attempts", sa.Integer(), nullable=False,
                                   server_default="3"))
        batch.add_column(sa.Column("lease_owner", sa.String(255), nullable=True))
        batch.add_column(sa.Column("lease_token", sa.Integer(), nullable=False,
                                   server_default="0"))
        batch.add_column(sa.Column("lease_expires_at", sa.DateTime(), nullable=True))
        batch.add_column(sa.Column("cancel_requested", sa.Boolean(), nullable=False,
                                   server_default=sa.false()))
    op.create_index("ix_tasks_status_lease", "tasks", ["status", "lease_expires_at"])


def downgrade() -> None:
    op.drop_index("ix_tasks_status_lease", table_name="tasks")
    with op.batch_alter_table("tasks") as batch:
        for column in ("cancel_requested", "lease_expires_at", "lease_token", "lease_owner",
                       "max_attempts"):
            batch.drop_column(column)
