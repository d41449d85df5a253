"""Tasks bound to one process: ``bound_to`` names the runner that alone may run the task, as
it alone holds the caller's credentials (glance-download; ``glint.tasks.binding``).

Revision ID: 0006_task_bound_to
Revises: 0005_task_progress
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_task_bound_to"
down_revision: str | None = "0005_task_progress"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(sa.Column("bound_to", sa.String(255), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("bound_to")
