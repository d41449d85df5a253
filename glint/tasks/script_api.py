"""What a script is lent, behind the contract's Protocols (:mod:`glint.scripts.contract`).

:class:`ScriptDbApi` is the database API (``ImageApi``): images, and its own task record,
nothing wider. :class:`ScriptStores` is the stores by id (``Stores``).

Every call acts with the request context of the user who created the task, so a script sees
exactly the images that user may see. Every write about the task, and every image status
change, is fenced by the runner's lease: once the task was handed to another runner, they raise
:class:`glint.errors.LeaseLost` and change nothing.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from sqlalchemy import orm

from glint import errors, metrics
from glint.context import RequestContext
from glint.db import engine, leases
from glint.db import tasks as task_rows
from glint.images import locations as image_locations
from glint.images import service as images
from glint.images import states as image_states
from glint.images import views as image_views
from glint.scripts import contract
from glint.stores import multi
from glint.stores.base import Store
from glint.tasks import views as task_views


class ScriptDbApi:
    def __init__(self, db: engine.Database, images_service: images.ImageService,
                 locations: image_locations.Locations, ctx: RequestContext, task_id: str,
                 lease: leases.Lease | None = None) -> None:
        self._db = db
        self._images = images_service
        self._locations = locations
        self._ctx = ctx
        self._task_id = task_id
        self._lease = lease
        self.created: list[str] = []  # images this run created (removed if its lease is lost)

    def get_task(self) -> dict[str, Any]:
        """This task as the API shows it."""
        with self._db.reader() as session:
            task = task_rows.get_any(session, self._task_id)
            assert task is not None
            return task_views.full(task)

    def create_image(self, values: Mapping[str, Any],
                     status: str = image_states.QUEUED) -> dict[str, Any]:
        """Create an image owned by the task's project and link it to this task."""
        # The link is written first: a run killed between the two commits leaves the task
        # naming an image that does not exist (harmless), never an image no task names.
        image_id = str(values.get("id") or uuid.uuid4())
        self.link_image(image_id)
        self.created.append(image_id)
        try:
            image = self._images.create(self._ctx, {**values, "id": image_id}, status=status)
        except BaseException:
            self._unlink(image_id)
            raise
        return image_views.api(image)

    def _unlink(self, image_id: str) -> None:
        with self._db.session() as session:
            task = task_rows.get_any(session, self._task_id)
            if task is not None and task.image_id == image_id:
                if self._lease is None:
                    task.image_id = None
                else:
                    leases.write(session, self._lease, image_id=None)

    def link_image(self, image_id: str) -> None:
        """Record ``image_id`` as the image this task works on (``GET /v2/images/{id}/tasks``)."""
        with self._db.session() as session:
            if self._lease is not None:
                if not leases.write(session, self._lease, image_id=image_id):
                    raise errors.LeaseLost(f"Task {self._task_id} is no longer held by this "
                                           "runner; the image was not linked")
                return
            task = task_rows.get_any(session, self._task_id)
            assert task is not None
            task.image_id = image_id

    def task_image_id(self) -> str | None:
        """The image this task works on, as recorded (by this run or a previous attempt)."""
        with self._db.reader() as session:
            task = task_rows.get_any(session, self._task_id)
            return None if task is None else task.image_id

    def get_image(self, image_id: str) -> dict[str, Any]:
        return self._images.view(self._images.get(self._ctx, image_id))

    def get_active_image(self, image_id: str, action: str,
                         done: str) -> tuple[dict[str, Any], str]:
        """The image and its data's location, for a script that reads its bytes.

        ScriptError (naming ``action``/``done``, e.g. "clone"/"cloned") unless the image is
        visible and active.
        """
        try:
            image = self.get_image(image_id)
            location = self.get_image_location(image_id)
        except errors.NotFound as exc:
            raise errors.ScriptError(f"Cannot {action}: {exc.message}") from exc
        if image["status"] != image_states.ACTIVE or location is None:
            raise errors.ScriptError(f"Cannot {action} image {image_id}: it is {image['status']}, "
                                     f"and only active images can be {done}")
        return image, location

    def get_image_location(self, image_id: str) -> str | None:
        """Where the image's bytes are in the store (for ``store_api.read``)."""
        return self._images.get(self._ctx, image_id).location

    def set_image_status(self, image_id: str, status: str, expected: str | None = None,
                         **fields: Any) -> dict[str, Any]:
        return image_views.api(self._images.set_status(self._ctx, image_id, status, expected,
                                                       guard=self._guard, **fields))

    def set_image_attributes(self, image_id: str, fields: Mapping[str, Any],
                             properties: Mapping[str, str | None]) -> dict[str, Any]:
        """Set columns (``disk_format``, ...) and extra properties (None removes one)."""
        return image_views.api(self._images.set_attributes(self._ctx, image_id, fields,
                                                           properties, guard=self._guard))

    def set_image_data(self, image_id: str, data: contract.ImageData,
                       from_status: str) -> dict[str, Any]:
        """Record stored bytes and activate the image, or remove the bytes and raise."""
        written = images.ImageData(**{field.name: getattr(data, field.name)
                                      for field in dataclasses.fields(images.ImageData)})
        return image_views.api(self._images.set_data(self._ctx, image_id, written, from_status,
                                                     guard=self._guard))

    def discard_image(self, image_id: str) -> None:
        """Delete an image this task created, and its bytes (cleanup after a failure)."""
        self._images.discard(self._ctx, image_id)

    def get_image_locations(self, image_id: str) -> list[tuple[str | None, str]]:
        """The (store, location) pairs holding the image's bytes (store None: the default)."""
        return image_locations.held(self._images.get(self._ctx, image_id))

    def add_image_location(self, image_id: str, store: str, location: str) -> None:
        """Record a copy of the active image's bytes in ``store`` (removed again on refusal)."""
        self._locations.add(self._ctx, image_id, store, location, guard=self._guard)

    def remove_image_location(self, image_id: str, store: str) -> None:
        """Forget and remove the copy in ``store`` (never the last one)."""
        self._locations.drop(image_id, store, guard=self._guard)

    def import_progress(self, image_id: str, *, start: list[str] | None = None,
                        done: str | None = None, failed: list[str] | None = None) -> None:
        """Update ``os_glance_importing_to_stores`` / ``os_glance_failed_import``."""
        self._locations.progress(
            image_id, start=start, done=done, failed=failed or (), guard=self._guard)

    def importing_stores(self, image_id: str) -> list[str]:
        return self._locations.importing(image_id)

    def release_import_lock(self, image_id: str) -> bool:
        """Drop the image's import lock if this task holds it (``os_glance_import_task``)."""
        return self._images.delete_property_atomic(image_id, "os_glance_import_task",
                                                   self._task_id)

    def _guard(self, session: orm.Session) -> None:
        if self._lease is not None:
            leases.hold(session, self._lease)


class ScriptStores:
    """The stores by id, as a script sees them (``contract.Stores``), and the staging area."""

    def __init__(self, store: Store, staging: Store) -> None:
        self._stores = multi.of(store)
        self._staging = staging

    @property
    def multi(self) -> bool:
        return self._stores.multi

    @property
    def default(self) -> str:
        return self._stores.default

    @property
    def ids(self) -> tuple[str, ...]:
        return self._stores.ids

    @property
    def backends(self) -> Mapping[str, Store]:
        return self._stores.backends

    @property
    def staging(self) -> Store:
        return self._staging

    def backend(self, store_id: str | None) -> Store:
        return self._stores.backend(store_id)

    def resolve(self, store_id: str | None) -> str:
        return self._stores.resolve(store_id)

    def copy(self, source: str | None, location: str, target: str | None, image_id: str,
             checksum: str | None = None, should_cancel: Callable[[], bool] | None = None,
             check: Callable[[Iterable[bytes]], Iterable[bytes]] | None = None) -> str:
        return multi.copy_between(self.backend(source), location, self.backend(target),
                                  image_id, checksum, should_cancel,
                                  check=check if check is not None else (lambda chunks: chunks),
                                  meter=self.meter(target))

    def meter(self, store_id: str | None) -> Callable[[int], None]:
        return metrics.meter("import", self.resolve(store_id))
