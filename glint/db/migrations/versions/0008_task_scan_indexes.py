"""Indexes for the operator view's scans of the tasks table.

``/metrics`` counts tasks by status and type on every scrape, and the dashboard reads the tasks
finished in the last half hour on every poll. ``(status, type)`` lets the count read the index
alone; ``updated_at`` keeps the dashboard's read to the recent rows, whatever the table's size.

Revision ID: 0008_task_scan_indexes
Revises: 0007_task_retries
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0008_task_scan_indexes"
down_revision: str | None = "0007_task_retries"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_tasks_status_type", "tasks", ["status", "type"])
    op.create_index("ix_tasks_updated_at", "tasks", ["updated_at"])


def downgrade() -> None:
    op.drop_index("ix_tasks_updated_at", table_name="tasks")
    op.drop_index("ix_tasks_status_type", table_name="tasks")
