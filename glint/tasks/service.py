"""Creating, reading and purging tasks. Running them is the runner's job."""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from glint import errors, metrics
from glint import policy as policies
from glint.context import RequestContext
from glint.db import engine, models
from glint.db import tasks as task_rows
from glint.notifiers import base as notifiers
from glint.scripts import contract
from glint.scripts.registry import Registry
from glint.settings import Settings
from glint.tasks import routing, states, views
from glint.tasks.handoff import Handoff
from glint.tasks.runner import Runner


class TaskService:
    def __init__(self, db: engine.Database, registry: Registry, router: routing.Router,
                 notifier: notifiers.Notifier, settings: Settings, runner: Runner,
                 policy: policies.Policy) -> None:
        self.policy = policy
        self.db = db
        self.registry = registry
        self.router = router
        self.notifier = notifier
        self.settings = settings
        self.runner = runner
        # What a script's validate reads: the settings of the contract, nothing wider.
        self.script_settings = contract.ScriptSettings.from_settings(settings)

    @property
    def handoff(self) -> Handoff:
        """Where a request leaves the caller's credentials for its task (in memory only)."""
        return self.runner.handoff

    def create(self, ctx: RequestContext, task_type: str, task_input: Any,
               image_id: str | None = None, authorize: bool = True,
               bound: bool = False) -> models.Task:
        """Authorize, validate, write, commit, notify, *then* hand the id to the executor its
        type routes to.

        The policy rule is ``add_task:<type>`` (``add_task`` for a type without one).
        ``authorize=False`` is for tasks glint starts for an action already authorized (an
        image import). ``bound``: only this process's runner may run the task
        (``glint.tasks.binding``).
        """
        task = self.new(ctx, task_type, task_input, image_id=image_id, authorize=authorize,
                        bound=bound)
        with self.db.one_statement() as connection:
            task_rows.insert(connection, task)
        self.dispatch(task)
        return task

    def new(self, ctx: RequestContext, task_type: str, task_input: Any,
            image_id: str | None = None, authorize: bool = True,
            bound: bool = False) -> models.Task:
        """:meth:`create`'s checks and its row, not yet written: for a caller that writes it in
        its own transaction (an import, with its image's lock), then calls :meth:`dispatch`."""
        if authorize:
            target = {**policies.project_target(ctx), "type": task_type}
            self.policy.enforce(ctx, self.policy.task_rule(task_type), target)
        if task_type not in self.registry:
            raise errors.BadRequest(f"Task type '{task_type}' is not one of the installed "
                                    f"task types: {', '.join(self.registry.types)}")
        if not isinstance(task_input, dict):
            raise errors.BadRequest("Task 'input' must be a JSON object")
        script = self.registry.get(task_type)
        script.check_input(task_input)
        if script.validate is not None:
            script.validate(task_input, self.script_settings)
        return models.Task(
            id=str(uuid.uuid4()), type=task_type, status=states.PENDING,
            owner=ctx.owner or "", image_id=image_id,
            request_id=ctx.request_id, user_id=ctx.user_id, input=task_input, result=None,
            message="", context=ctx.to_dict(), max_attempts=self.settings.task_max_attempts,
            bound_to=self.runner.owner if bound else None)

    def dispatch(self, task: models.Task) -> None:
        """After the commit that wrote ``task``: the event, then the executor."""
        if notifiers.wants(self.notifier, "task.create"):
            self.notifier.notify(notifiers.Event("task.create", views.notification(task)))
        metrics.TASKS_CREATED.labels(task.type).inc()
        try:
            self.router.submit(task.id, task.type)
        except errors.ServiceUnavailable as exc:
            # Not accepted: the task is failed rather than left for a hand-over that may never be.
            self.runner.fail_unsubmitted(task.id, exc.message)
            raise

    def cancel(self, ctx: RequestContext, task_id: str) -> models.Task:
        """Ask for an unfinished task to stop (``cancel_task``); Conflict when it is final."""
        task = self.get(ctx, task_id)
        self.policy.enforce(ctx, "cancel_task", policies.task_target(task))
        if task.status in states.FINAL:
            raise errors.Conflict(f"Task {task_id} is already {task.status} and cannot be "
                                  "cancelled")
        self.runner.cancel(task_id)
        return self.get(ctx, task_id)

    def get(self, ctx: RequestContext, task_id: str) -> models.Task:
        """The task: NotFound unless ``ctx`` can see it (its project's, or an admin), then
        the ``get_task`` rule."""
        with self.db.reader() as session:
            task = task_rows.get(session, ctx, task_id)
        self.policy.enforce(ctx, "get_task", policies.task_target(task))
        return task

    def list(self, ctx: RequestContext, query: task_rows.TaskQuery) -> Sequence[sa.Row[Any]]:
        self.policy.enforce(ctx, "get_tasks", policies.project_target(ctx))
        with self.db.reader() as session:
            return task_rows.list_(session, ctx, query)

    def row(self, task_id: str) -> models.Task:
        """The task, expired or not (NotFound once deleted), for operators: no policy check."""
        with self.db.reader() as session:
            task = task_rows.get_any(session, task_id)
        if task is None or task.deleted:
            raise errors.NotFound(f"Task with identifier {task_id} not found")
        return task

    def find(self, filters: dict[str, str], created_before: datetime.datetime | None = None,
             limit: int = 50) -> Sequence[models.Task]:
        """For operators, unchecked by policy (``glint task list``): see ``task_rows.find``."""
        with self.db.reader() as session:
            return task_rows.find(session, filters, created_before, limit)

    def retry(self, task_id: str) -> models.Task:
        """A new task with a failed one's type, input and creator's context (``glint task
        retry``); the failed one stays as it is. Conflict for a task that did not fail, or that
        cannot be run again as it was created: one bound to the process holding its caller's
        credentials, or one acting on an image that existed before it (an image import: import
        the image again, which checks and locks the image).
        """
        task = self.row(task_id)
        if task.status != states.FAILURE:
            raise errors.Conflict(f"Task {task_id} is {task.status}; only a failed task is retried")
        if task.bound_to is not None:
            raise errors.Conflict(f"Task {task_id} needed its caller's credentials, which are "
                                  "never stored: its caller must create it again")
        if self._acts_on_existing_image(task):
            raise errors.Conflict(f"Task {task_id} worked on image {task.image_id}: import the "
                                  f"image again (POST /v2/images/{task.image_id}/import) instead")
        return self.create(RequestContext.from_dict(task.context or {}), task.type,
                           dict(task.input or {}), authorize=False)

    def _acts_on_existing_image(self, task: models.Task) -> bool:
        if task.image_id is None:
            return False
        with self.db.reader() as session:
            image = session.get(models.Image, task.image_id)
        return image is not None and image.created_at < task.created_at

    def for_image(self, image_id: str) -> Sequence[models.Task]:
        with self.db.reader() as session:
            return task_rows.by_image(session, image_id)

    def purge(self) -> int:
        """Hard-delete expired tasks; return how many went."""
        with self.db.session() as session:
            return task_rows.purge_expired(session, models.utcnow())
