"""The dashboard's snapshot on a migrated database, PostgreSQL and SQLite: its queries
(grouping, lease owners, minutes of finished tasks) on both engines."""

from __future__ import annotations

import datetime

from glint.context import RequestContext
from glint.dashboard import Dashboard
from glint.db import models
from tests.conftest import MakeGlint
from tests.integration.task_support import echo, insert, refuse, registry


def test_snapshot_counts_tasks_workers_and_finished_minutes(make_glint: MakeGlint,
                                                           ctx: RequestContext) -> None:
    glint = make_glint(registry=registry(echo=echo, refuse=refuse))
    glint.tasks.create(ctx, "echo", {"value": 1})
    failed = glint.tasks.create(ctx, "refuse", {"value": 2})
    expiry = models.utcnow() + datetime.timedelta(minutes=1)
    for _ in range(2):
        insert(glint, ctx, status="processing", lease_owner="node-1:42:ab",
               lease_expires_at=expiry, attempts=1, progress={"done": 5, "total": 10,
                                                              "percent": 50.0})
    # Finished before the chart's 30 minutes: counted by state, not in the chart.
    insert(glint, ctx, status="success", attempts=1,
           updated_at=models.utcnow() - datetime.timedelta(hours=1))

    board = Dashboard(glint.db, glint.tasks, "memory")
    snapshot = board.snapshot()
    assert [(s["status"], s["type"], s["count"]) for s in snapshot["tasks_by_state"]] == [
        ("failure", "refuse", 1), ("processing", "echo", 2), ("success", "echo", 2)]
    assert snapshot["workers"] == [{"name": "node-1:42:ab", "tasks": 2,
                                    "lease_expires_at": expiry.strftime("%Y-%m-%dT%H:%M:%SZ")}]
    assert sum(point["finished"] for point in snapshot["throughput"]) == 2
    running = [t for t in snapshot["recent"] if t["status"] == "processing"]
    assert [t["progress"]["percent"] for t in running] == [50.0, 50.0]

    timeline = board.task(failed.id)
    assert (timeline["status"], timeline["attempts"], timeline["cancel_requested"]) == (
        "failure", 1, False)
    assert "not welcome" in timeline["message"]
