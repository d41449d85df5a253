"""Interoperable import: ``POST /v2/images/{id}/import`` starts an ``api_image_import`` task.

The order is Glance's: check the request (400), the caller (403) and the image (409), take the
image's import lock and create the task (which the executor then runs). The lock is the image
property ``os_glance_import_task=<task id>``, written in one transaction with the task, on the
locked image row: of two imports at once, exactly one gets 202, the other 409, while the task
holding the lock is pending or processing. A lock whose task has finished or was purged is
taken over. The script releases the lock when it ends, whichever way.
"""

from __future__ import annotations

import dataclasses
import functools
import uuid
from collections.abc import Mapping
from typing import Any

from sqlalchemy import orm

from glint import errors, urlfilter
from glint.context import RequestContext
from glint.db import models
from glint.db import tasks as task_rows
from glint.images import locations, service, states
from glint.images.service import ImageService
from glint.settings import Settings
from glint.stores.multi import MultiStore
from glint.tasks import handoff
from glint.tasks import states as task_states
from glint.tasks.service import TaskService

SCRIPT = "api_image_import"
LOCK = "os_glance_import_task"
GLANCE_DIRECT = "glance-direct"
WEB_DOWNLOAD = "web-download"
COPY_IMAGE = "copy-image"  # an active image's data to more stores (multi-store only)
GLANCE_DOWNLOAD = "glance-download"  # from another Glance region, as the caller
# The methods glint runs, and the status each needs the image in.
NEEDED_STATUS = {GLANCE_DIRECT: states.UPLOADING, WEB_DOWNLOAD: states.QUEUED,
                 COPY_IMAGE: states.ACTIVE, GLANCE_DOWNLOAD: states.QUEUED}


@dataclasses.dataclass(frozen=True)
class ImportRequest:
    """A checked import request; ``body`` is kept as sent (the task's ``import_req``)."""

    method: str
    stores: tuple[str, ...]
    body: Mapping[str, Any]
    all_stores: bool = False


def parse(body: Mapping[str, Any], store_header: str | None, settings: Settings,
          backends: MultiStore) -> ImportRequest:
    """Check an import body as Glance does (400 naming the problem; 409 for a store that is
    not configured, with multi-store)."""
    check_method(body, settings)
    must_succeed = body.get("all_stores_must_succeed", True)
    if not isinstance(must_succeed, bool):
        raise errors.BadRequest("'all_stores_must_succeed' must be a boolean")
    method = body["method"]["name"]
    if not backends.multi:
        if must_succeed is not True:
            raise errors.BadRequest("all_stores_must_succeed can only be false with several "
                                    "stores, and this cloud has one")
        return ImportRequest(method=method, stores=_stores(body, store_header, backends.default),
                             body=dict(body))
    names = _named_stores(body, store_header)
    all_stores = bool(body.get("all_stores"))
    stores = backends.ids if all_stores else tuple(dict.fromkeys(names or [backends.default]))
    unknown = [n for n in stores if n not in backends.backends]
    if unknown:
        raise errors.Conflict(f"Unknown store(s) {', '.join(n[:64] for n in unknown)}; "
                              f"stores: {', '.join(backends.ids)}")
    return ImportRequest(method=method, stores=stores, body=dict(body), all_stores=all_stores)


def check_method(body: Mapping[str, Any], settings: Settings) -> None:
    """The ``method`` object: an enabled method glint runs; web-download's URI passes the filter."""
    method = body.get("method")
    if not isinstance(method, Mapping) or not isinstance(method.get("name"), str):
        raise errors.BadRequest("Import request requires a 'method' object with a 'name'")
    name = method["name"]
    if name not in settings.enabled_import_methods or name not in NEEDED_STATUS:
        enabled = [m for m in settings.enabled_import_methods if m in NEEDED_STATUS]
        raise errors.BadRequest(f"Import method {name[:64]!r} is not enabled; enabled methods: "
                                f"{', '.join(enabled) or 'none'}")
    if name == WEB_DOWNLOAD:
        uri = method.get("uri")
        if not isinstance(uri, str) or not uri:
            raise errors.BadRequest("The web-download method requires a 'uri'")
        try:
            urlfilter.UrlFilter.from_settings(settings).check(uri)
        except errors.BadRequest as exc:
            raise errors.BadRequest(f"URI for web-download does not pass filtering: "
                                    f"{exc.message}") from None
    if name == GLANCE_DOWNLOAD:
        _check_glance_download(method)


def _check_glance_download(method: Mapping[str, Any]) -> None:
    """Glance's checks (400): a UUID image id, a region, an interface name."""
    image_id = method.get("glance_image_id")
    try:
        uuid.UUID(str(image_id))
    except ValueError:
        raise errors.BadRequest(f"Requested image id does not look like a UUID: "
                                f"{str(image_id)[:64]!r}") from None
    region = method.get("glance_region")
    if not isinstance(region, str) or not region:
        raise errors.BadRequest("The glance-download method requires a 'glance_region'")
    if not isinstance(method.get("glance_service_interface", "public"), str):
        raise errors.BadRequest("'glance_service_interface' must be a string")


def _stores(body: Mapping[str, Any], header: str | None, store_name: str) -> tuple[str, ...]:
    names = _named_stores(body, header)
    unknown = sorted({n for n in names if n != store_name})
    if unknown:
        raise errors.BadRequest(f"Unknown store(s) {', '.join(n[:64] for n in unknown)}; "
                                f"this cloud has one store, {store_name!r}")
    return (store_name,)


def _named_stores(body: Mapping[str, Any], header: str | None) -> list[str]:
    """The stores the body or ``X-Image-Meta-Store`` name, checked for shape (400)."""
    stores = body.get("stores")
    all_stores = body.get("all_stores")
    if stores is not None and header:
        raise errors.BadRequest("Name the stores in the body or in X-Image-Meta-Store, not both")
    if all_stores is not None and not isinstance(all_stores, bool):
        raise errors.BadRequest("'all_stores' must be a boolean")
    if all_stores and (stores is not None or header):
        raise errors.BadRequest("'all_stores' cannot be combined with named stores")
    if stores is not None and (not isinstance(stores, list)
                               or not all(isinstance(s, str) for s in stores)):
        raise errors.BadRequest("'stores' must be a list of store names")
    return [*(stores or ()), *([header] if header else [])]


class Imports:
    def __init__(self, images: ImageService, tasks: TaskService) -> None:
        self.images = images
        self.tasks = tasks

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
            handoff.HANDOFF.put(task.id, handoff.Credentials(ctx.auth_token,
                                                             ctx.service_catalog))
        try:
            self._lock_and_write(ctx, image_id, task)
        except BaseException:
            handoff.HANDOFF.discard(task.id)
            raise
        try:
            self.tasks.dispatch(task)
        except BaseException:  # not handed over (the task is failed): the image is free again
            handoff.HANDOFF.discard(task.id)
            self.images.delete_property_atomic(image_id, LOCK, task.id)
            raise
        return task

    def _lock_and_write(self, ctx: RequestContext, image_id: str, task: models.Task) -> None:
        """Take the image's import lock for ``task`` and write the task, in one transaction.

        The image row stays locked until the commit: a second import waits for it, then sees
        the lock naming a task that exists (and is pending), and gets 409.
        """
        with self.images.db.session() as session:
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
        if getattr(self.tasks.router.executor_for(SCRIPT), "remote", False):
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
