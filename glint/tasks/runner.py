"""The runner: the only code that changes a task's status.

``run(task_id)`` claims a pending task (a conditional update, so a duplicate call does nothing),
builds the script's context, calls the script's ``main`` and records success or failure.
Notifications go out after each commit.
"""

from __future__ import annotations

import datetime
import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from glint import errors
from glint.context import RequestContext
from glint.db import engine, models
from glint.db import images as image_rows
from glint.db import tasks as task_rows
from glint.images import service as images
from glint.notifiers import base as notifiers
from glint.scripts import contract, db_api
from glint.scripts.registry import Registry
from glint.settings import Settings
from glint.stores.base import Store
from glint.tasks import states, views

LOG = logging.getLogger(__name__)
PROGRESS_INTERVAL = 1.0  # seconds between progress writes
MiB = 1024 * 1024
INTERRUPTED = ("glint stopped while this task was running; the task was failed at the next "
               "start and its partial work removed. Create the task again to retry.")


class Runner:
    def __init__(self, db: engine.Database, registry: Registry, images_service: images.ImageService,
                 store: Store, notifier: notifiers.Notifier, settings: Settings) -> None:
        self.db = db
        self.registry = registry
        self.images = images_service
        self.store = store
        self.notifier = notifier
        self.settings = settings
        self.stopping = threading.Event()

    def run(self, task_id: str) -> None:
        """Run one task to its final status. Safe to call twice: the second call does nothing."""
        task = self._claim(task_id)
        if task is None:
            return
        try:
            script = self.registry.get(task.type)
        except errors.NotFound:
            self._finish(task, states.FAILURE, message=f"Task type '{task.type}' is not installed")
            return
        ctx = self._context(task)
        try:
            result = script.main(ctx)
            result = _json_object(result)
        except Exception as exc:  # every failure of a script ends its task, never the runner
            self._fail(task, exc)
            return
        self._finish(task, states.SUCCESS, result=result)

    def recover(self) -> list[str]:
        """At start-up: fail tasks a dead process left ``processing``; return pending ids.

        Pending tasks never started, so they are simply submitted again. A processing task may
        have done part of its work: its image (if any, and not active) is discarded with its
        bytes, and the task fails with a message saying why.
        """
        with self.db.reader() as session:
            interrupted = task_rows.ids_with_status(session, states.PROCESSING)
            pending = task_rows.ids_with_status(session, states.PENDING)
        for task_id in interrupted:
            self._fail_interrupted(task_id)
        return pending

    # -- internals -----------------------------------------------------------------------

    def _claim(self, task_id: str) -> models.Task | None:
        with self.db.session() as session:
            claimed = task_rows.compare_and_set(session, task_id, states.PENDING,
                                                status=states.PROCESSING)
            task = task_rows.get_any(session, task_id) if claimed else None
            if task is not None:
                session.refresh(task)
        if task is None:
            LOG.debug("task %s was not pending; not running it", task_id)
            return None
        self._notify("task.processing", task)
        return task

    def _context(self, task: models.Task) -> contract.ScriptContext:
        request_context = RequestContext.from_dict(task.context or {})
        return contract.ScriptContext(
            task_id=task.id, task_type=task.type, task_input=dict(task.input or {}),
            request_context=request_context,
            db_api=db_api.ScriptDbApi(self.db, self.images, request_context, task.id),
            store_api=self.store, notifier_api=self.notifier, settings=self.settings,
            report_progress=_Progress(self.db, task.id),
            should_cancel=self.stopping.is_set,
            logger=logging.getLogger(f"glint.task.{task.type}"))

    def _fail(self, task: models.Task, exc: Exception) -> None:
        if isinstance(exc, errors.GlintError):
            message = exc.message
        else:
            LOG.exception("task %s (%s) failed with an unexpected error", task.id, task.type)
            message = f"Task failed due to an internal error ({type(exc).__name__}: {exc})"
        self._finish(task, states.FAILURE, message=message)

    def _finish(self, task: models.Task, target: str, result: dict[str, Any] | None = None,
                message: str = "") -> None:
        states.check(states.PROCESSING, target)
        now = models.utcnow()
        expires = now + datetime.timedelta(hours=self.settings.task_time_to_live)
        with self.db.session() as session:
            done = task_rows.compare_and_set(
                session, task.id, states.PROCESSING, status=target, result=result,
                message=message[:65535], expires_at=expires, updated_at=now)
            row = task_rows.get_any(session, task.id)
            if row is not None:
                session.refresh(row)
        if not done or row is None:
            LOG.warning("task %s was no longer processing; result not recorded", task.id)
            return
        self._notify(f"task.{target}", row, notifiers.ERROR if target == states.FAILURE
                     else notifiers.INFO)

    def _fail_interrupted(self, task_id: str) -> None:
        with self.db.reader() as session:
            task = task_rows.get_any(session, task_id)
        if task is None:
            return
        if task.image_id is not None:
            status = _image_status(self.db, task.image_id)
            if status is not None and status != "active":
                self.images.discard(RequestContext.admin(), task.image_id)
        self._finish(task, states.FAILURE, message=INTERRUPTED)

    def _notify(self, event_type: str, task: models.Task, priority: str = notifiers.INFO) -> None:
        self.notifier.notify(notifiers.Event(event_type, views.notification(task), priority))


class _Progress:
    """Writes progress to the task's ``message``, at most once per PROGRESS_INTERVAL."""

    def __init__(self, db: engine.Database, task_id: str,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._db = db
        self._task_id = task_id
        self._clock = clock
        self._last = float("-inf")

    def __call__(self, done: int, total: int | None = None, message: str | None = None) -> None:
        now = self._clock()
        if now - self._last < PROGRESS_INTERVAL:
            return
        self._last = now
        text = message if message is not None else f"Copied {done // MiB} MiB"
        with self._db.session() as session:
            task_rows.compare_and_set(session, self._task_id, states.PROCESSING, message=text)


def _image_status(db: engine.Database, image_id: str) -> str | None:
    with db.reader() as session:
        image = image_rows.get_any(session, image_id)
        return None if image is None or image.deleted else image.status


def _json_object(result: Any) -> dict[str, Any]:
    if result is None:
        return {}
    if not isinstance(result, dict):
        raise errors.ScriptError(f"script returned {type(result).__name__}, not a JSON object")
    try:
        return dict(json.loads(json.dumps(result)))
    except (TypeError, ValueError) as exc:
        raise errors.ScriptError(f"script result is not JSON-serialisable: {exc}") from exc
