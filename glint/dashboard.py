"""What the admins' dashboard shows (``GET /dashboard``): one snapshot of the database.

Tasks by state and type, the newest tasks with their progress, the workers holding leases, each task's runs,
images and bytes by store, and tasks finished per minute. The counts reuse the queries the
``/metrics`` gauges read (:mod:`glint.metrics`). Everything is plain JSON-able data: the page
is rendered from it (:mod:`glint.api.dashboard`) and its script polls it.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa

from glint import metrics
from glint.db import attempts, engine, models
from glint.tasks import states, views
from glint.tasks.service import TaskService
from glint.timefmt import isotime

RECENT = 20  # tasks in the "recent" table
THROUGHPUT_MINUTES = 30  # the chart's span

_WORKERS = (sa.select(models.Task.lease_owner, sa.func.count(),
                      sa.func.max(models.Task.lease_expires_at))
            .where(models.Task.deleted.is_(False), models.Task.status == states.PROCESSING,
                   models.Task.lease_owner.is_not(None))
            .group_by(models.Task.lease_owner))


class Dashboard:
    """Reads the snapshot; no policy check here (the route admits admins only)."""

    def __init__(self, db: engine.Database, tasks: TaskService, default_store: str) -> None:
        self.db = db
        self.tasks = tasks
        self.default_store = default_store

    def snapshot(self) -> dict[str, Any]:
        """Everything the page shows, as of now."""
        now = models.utcnow()
        since = now.replace(second=0, microsecond=0) - datetime.timedelta(
            minutes=THROUGHPUT_MINUTES - 1)
        with self.db.reader() as session:
            by_state = session.execute(metrics.TASKS_BY_STATUS).all()
            stores = session.execute(metrics.IMAGES_BY_STORE).all()
            workers = session.execute(_WORKERS).all()
            finished = session.scalars(sa.select(models.Task.updated_at).where(
                models.Task.status.in_((states.SUCCESS, states.FAILURE)),
                models.Task.updated_at >= since)).all()
        recent = self.tasks.find({}, None, RECENT)
        return {
            "generated_at": isotime(now),
            "tasks_by_state": [{"status": s, "type": t, "count": n}
                               for s, t, n in sorted(by_state, key=lambda r: (r[0], r[1]))],
            "recent": [task_view(task) for task in recent],
            "workers": [{"name": name, "tasks": count, "lease_expires_at": isotime(expiry)}
                        for name, count, expiry in sorted(workers, key=lambda r: str(r[0]))],
            "stores": [{"store": name, "images": count, "bytes": size} for name, (count, size)
                       in metrics.store_totals(stores, self.default_store).items()],
            "throughput": per_minute(finished, since, THROUGHPUT_MINUTES),
        }

    def task(self, task_id: str) -> dict[str, Any]:
        """One task's timeline (NotFound when there is no such task)."""
        found = self.tasks.row(task_id)
        with self.db.reader() as session:
            runs = attempts.of(session, task_id)
        return {**task_view(found), "retries": found.retries, "image_id": found.image_id,
                "cancel_requested": found.cancel_requested,
                "lease_expires_at": isotime(found.lease_expires_at),
                "history": [attempt_view(run) for run in runs]}


def attempt_view(run: models.TaskAttempt) -> dict[str, Any]:
    """One run of a task: its number, worker, start, end and outcome (None while it runs)."""
    return {"number": run.number, "worker": run.worker, "started_at": isotime(run.started_at),
            "ended_at": isotime(run.ended_at), "outcome": run.outcome, "message": run.message}


def task_view(task: models.Task) -> dict[str, Any]:
    """A task as the dashboard lists it: what an admin's ``GET /v2/tasks/{id}`` shows, less
    its input and result."""
    full = views.with_lease(task)
    keys = ("id", "type", "status", "owner", "created_at", "updated_at", "message", "progress",
            "attempts", "max_attempts", "lease_owner")
    return {key: full.get(key) for key in keys}


def per_minute(times: Iterable[datetime.datetime], since: datetime.datetime,
               minutes: int) -> list[dict[str, Any]]:
    """How many of ``times`` fall in each minute from ``since``: the chart's points."""
    counts = [0] * minutes
    for when in times:
        index = int((when - since).total_seconds() // 60)
        if 0 <= index < minutes:
            counts[index] += 1
    return [{"minute": isotime(since + datetime.timedelta(minutes=i)), "finished": n}
            for i, n in enumerate(counts)]
