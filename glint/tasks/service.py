"""Creating, reading and purging tasks. Running them is the runner's job."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from glint import errors
from glint.context import RequestContext
from glint.db import engine, models
from glint.db import tasks as task_rows
from glint.executors.base import Executor
from glint.notifiers import base as notifiers
from glint.scripts.registry import Registry
from glint.settings import Settings
from glint.tasks import states, views


class TaskService:
    def __init__(self, db: engine.Database, registry: Registry, executor: Executor,
                 notifier: notifiers.Notifier, settings: Settings) -> None:
        self.db = db
        self.registry = registry
        self.executor = executor
        self.notifier = notifier
        self.settings = settings

    def create(self, ctx: RequestContext, task_type: str, task_input: Any,
               image_id: str | None = None) -> models.Task:
        """Validate, write, commit, notify, *then* hand the id to the executor."""
        if task_type not in self.registry:
            raise errors.BadRequest(f"Task type '{task_type}' is not one of the installed "
                                    f"task types: {', '.join(self.registry.types)}")
        if not isinstance(task_input, dict):
            raise errors.BadRequest("Task 'input' must be a JSON object")
        script = self.registry.get(task_type)
        script.check_input(task_input)
        if script.validate is not None:
            script.validate(task_input, self.settings)
        task = models.Task(
            id=str(uuid.uuid4()), type=task_type, status=states.PENDING, owner=ctx.owner or "",
            image_id=image_id,
            request_id=ctx.request_id, user_id=ctx.user_id, input=task_input, result=None,
            message="", context=ctx.to_dict())
        with self.db.session() as session:
            task_rows.add(session, task)
        self.notifier.notify(notifiers.Event("task.create", views.notification(task)))
        self.executor.submit(task.id)
        return task

    def get(self, ctx: RequestContext, task_id: str) -> models.Task:
        with self.db.reader() as session:
            return task_rows.get(session, ctx, task_id)

    def list(self, ctx: RequestContext, query: task_rows.TaskQuery) -> Sequence[models.Task]:
        with self.db.reader() as session:
            return task_rows.list_(session, ctx, query)

    def for_image(self, image_id: str) -> Sequence[models.Task]:
        with self.db.reader() as session:
            return task_rows.by_image(session, image_id)

    def purge(self) -> int:
        """Hard-delete expired tasks; return how many went."""
        with self.db.session() as session:
            return task_rows.purge_expired(session, models.utcnow())
