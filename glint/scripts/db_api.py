"""The database API a script is lent: images, and its own task record, nothing wider.

Every call acts with the request context of the user who created the task, so a script sees
exactly the images that user may see.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from glint.context import RequestContext
from glint.db import engine
from glint.db import tasks as task_rows
from glint.images import service as images
from glint.images import states as image_states
from glint.images import views as image_views
from glint.tasks import views as task_views

ImageData = images.ImageData


class ScriptDbApi:
    def __init__(self, db: engine.Database, images_service: images.ImageService,
                 ctx: RequestContext, task_id: str) -> None:
        self._db = db
        self._images = images_service
        self._ctx = ctx
        self._task_id = task_id

    def get_task(self) -> dict[str, Any]:
        """This task as the API shows it."""
        with self._db.reader() as session:
            task = task_rows.get_any(session, self._task_id)
            assert task is not None
            return task_views.full(task)

    def create_image(self, values: Mapping[str, Any],
                     status: str = image_states.QUEUED) -> dict[str, Any]:
        """Create an image owned by the task's project and link it to this task."""
        image = self._images.create(self._ctx, values, status=status)
        self.link_image(image.id)
        return image_views.api(image)

    def link_image(self, image_id: str) -> None:
        """Record ``image_id`` as the image this task works on (``GET /v2/images/{id}/tasks``)."""
        with self._db.session() as session:
            task = task_rows.get_any(session, self._task_id)
            assert task is not None
            task.image_id = image_id

    def get_image(self, image_id: str) -> dict[str, Any]:
        return image_views.api(self._images.get(self._ctx, image_id))

    def get_image_location(self, image_id: str) -> str | None:
        """Where the image's bytes are in the store (for ``store_api.read``)."""
        return self._images.get(self._ctx, image_id).location

    def set_image_status(self, image_id: str, status: str, expected: str | None = None,
                         **fields: Any) -> dict[str, Any]:
        return image_views.api(self._images.set_status(self._ctx, image_id, status, expected,
                                                       **fields))

    def set_image_data(self, image_id: str, data: ImageData, from_status: str) -> dict[str, Any]:
        """Record stored bytes and activate the image, or remove the bytes and raise."""
        return image_views.api(self._images.set_data(self._ctx, image_id, data, from_status))

    def discard_image(self, image_id: str) -> None:
        """Delete an image this task created, and its bytes (cleanup after a failure)."""
        self._images.discard(self._ctx, image_id)
