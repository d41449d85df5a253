"""Interoperable import: ``POST /v2/images/{id}/import`` starts an ``api_image_import`` task.

The order is Glance's: check the request (400, :mod:`glint.imports.methods`), the caller (403)
and the image (409), take the image's import lock and create the task (which the executor then
runs). The lock is the image property ``os_glance_import_task=<task id>``, written in one
transaction with the task, on the locked image row: of two imports at once, exactly one gets
202, the other 409, while the task holding the lock is pending or processing. A lock whose task
has finished or was purged is taken over. The script releases the lock when it ends, whichever
way.

This slice sits above images and tasks and uses both; neither imports it.
"""

from __future__ import annotations

import dataclasses
import functools

from sqlalchemy import orm

from glint import errors
from glint.context import RequestContext
from glint.db import engine, models
from glint.db import tasks as task_rows
from glint.images import locations, service, states
from glint.images.service import ImageService
from glint.imports.methods import (
    COPY_IMAGE,
    GLANCE_DIRECT,
    GLANCE_DOWNLOAD,
    LOCK,
    NEEDED_STATUS,
    SCRIPT,
    ImportRequest,
)
from glint.tasks import handoff
from glint.tasks import states as task_states
from glint.tasks.service import TaskService


class Imports:
    def __init__(self, images: ImageService, tasks: TaskService, db: engine.Database) -> None:
        self.images = images
        self.tasks = tasks
        self.db = db

    def start(self, ctx: RequestContext, image_id: str,
              request: ImportRequest) -> models.Task | None:
        """Check the image, take its import lock, create the task; return the task.

        copy-image skips the stores that hold the image already (None: nothing to copy).
        """
        copying = request.method == COPY_IMAGE
        image = self.images.check(ctx, image_id, "copy_image" if copying else "import_image")
        _check_image(image, request.method)
        if copying:
            present = locations.store_ids(image, self.images.backends) or []
            request = dataclasses.replace(
                request, stores=tuple(s for s in request.stores if s not in present))
            if not request.stores:
                return None
        if request.method == GLANCE_DOWNLOAD:
            self._check_handoff(ctx)
        task_input = {"image_id": image_id, "import_req": dict(request.body),
                      "backend": list(request.stores)}
        # glance-download: the credentials are in this process only, so is the task.
        task = self.tasks.new(ctx, SCRIPT, task_input, image_id=image_id, authorize=False,
                              bound=request.method == GLANCE_DOWNLOAD)
        if request.method == GLANCE_DOWNLOAD:
            assert ctx.auth_token is not None  # _check_handoff
            self.tasks.handoff.put(task.id, handoff.Credentials(ctx.auth_token,
                                                                ctx.service_catalog))
        try:
            self._lock_and_write(ctx, image_id, task)
        except BaseException:
            self.tasks.handoff.discard(task.id)
            raise
        try:
            self.tasks.dispatch(task)
        except BaseException:  # not handed over (the task is failed): the image is free again
            self.tasks.handoff.discard(task.id)
            self.images.delete_property_atomic(image_id, LOCK, task.id)
            raise
        return task

    def _lock_and_write(self, ctx: RequestContext, image_id: str, task: models.Task) -> None:
        """Take the image's import lock for ``task`` and write the task, in one transaction.

        The image row stays locked until the commit: a second import waits for it, then sees
        the lock naming a task that exists (and is pending), and gets 409.
        """
        with self.db.session() as session:
            try:
                service.set_property_locked(session, ctx, image_id, LOCK, task.id,
                                            functools.partial(_stale, session))
            except errors.Conflict:
                raise errors.Conflict(f"Image {image_id} has an active import task") from None
            task_rows.add(session, task)

    def _check_handoff(self, ctx: RequestContext) -> None:
        """glance-download reads the source as the caller: it needs the caller's token, and
        the task must run in this process, which holds it (glint.tasks.handoff)."""
        if not ctx.auth_token:
            raise errors.BadRequest("The glance-download method reads the source image with "
                                    "the caller's Keystone token: it needs auth_mode keystone")
        if self.tasks.router.executor_for(SCRIPT).remote:
            raise errors.BadRequest(f"The glance-download method needs {SCRIPT} tasks to run "
                                    "in the API process (the caller's token is never sent to "
                                    "workers), but they are routed to a remote executor")


def _stale(session: orm.Session, holder: str) -> bool:
    """A lock may be taken over once the task holding it has ended, or is gone (purged: a lock
    is never written without its task, so a missing one is not still being created)."""
    task = task_rows.get_any(session, holder)
    return task is None or task.deleted or task.status in task_states.FINAL


def _check_image(image: models.Image, method: str) -> None:
    """Glance's import preconditions (409)."""
    if method == COPY_IMAGE:
        if image.status != states.ACTIVE:
            raise errors.Conflict(f"Image needs to be in 'active' state to use '{method}' "
                                  "method")
        return
    if image.status == states.ACTIVE:
        raise errors.Conflict("Image with status active cannot be target for import")
    needed = NEEDED_STATUS[method]
    if image.status != needed:
        if method == GLANCE_DIRECT:
            raise errors.Conflict("Image needs to be staged before 'glance-direct' method can "
                                  "be used")
        raise errors.Conflict(f"Image needs to be in '{needed}' state to use '{method}' method")
    for attribute in ("container_format", "disk_format"):
        if not getattr(image, attribute):
            raise errors.Conflict(f"'{attribute}' needs to be set before import")
