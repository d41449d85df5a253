"""Image operations shared by the Images API and by scripts.

Each operation runs in a visible order: validate, write, commit, *then* notify or remove bytes.
"""

from __future__ import annotations

import dataclasses
import logging
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy import orm

from glint import errors
from glint.context import RequestContext
from glint.db import engine, models
from glint.db import images as image_rows
from glint.images import attributes, patch, staging, states, views
from glint.notifiers import base as notifiers
from glint.settings import Settings
from glint.stores.base import Store

LOG = logging.getLogger(__name__)
Guard = Callable[[orm.Session], None]  # see ImageService.set_status


@dataclasses.dataclass(frozen=True)
class ImageData:
    """What a completed write produced."""

    location: str
    size: int
    checksum: str
    os_hash_algo: str
    os_hash_value: str
    disk_format: str | None = None  # set when the write changed it (a conversion)
    virtual_size: int | None = None  # when known (the format inspector's)


class ImageService:
    def __init__(self, db: engine.Database, store: Store, notifier: notifiers.Notifier,
                 settings: Settings, staging_area: Store | None = None) -> None:
        self.db = db
        self.store = store
        self.notifier = notifier
        self.settings = settings
        # Where glance-direct data waits for its import (glint.images.staging).
        self.staging = staging_area if staging_area is not None else staging.area(settings)

    # -- reads ---------------------------------------------------------------------------

    def get(self, ctx: RequestContext, image_id: str) -> models.Image:
        with self.db.reader() as session:
            return image_rows.get(session, ctx, image_id)

    def list(self, ctx: RequestContext, query: image_rows.ImageQuery) -> Sequence[models.Image]:
        """One page of the images ``ctx`` may list (``GET /v2/images``)."""
        with self.db.reader() as session:
            return image_rows.list_(session, ctx, query)

    def open_data(self, ctx: RequestContext, image_id: str, offset: int = 0,
                  length: int | None = None) -> tuple[models.Image, Iterator[bytes] | None]:
        """The image and a stream of its bytes (None when it has no data)."""
        image = self.get(ctx, image_id)
        if image.status == states.DEACTIVATED and not ctx.is_admin:
            raise errors.Forbidden("The requested image has been deactivated. "
                                   "Image data download is forbidden.")
        if image.location is None:
            return image, None
        return image, self.store.read(image.location, offset, length)

    # -- writes --------------------------------------------------------------------------

    def create(self, ctx: RequestContext, values: Mapping[str, Any],
               status: str = states.QUEUED) -> models.Image:
        """Create an image from API-style ``values`` (base attributes and extra properties)."""
        base, extra, tags = attributes.split(values, self.settings, ctx)
        image = models.Image(
            id=base.pop("id", None) or str(uuid.uuid4()), status=status,
            owner=base.pop("owner", None) or ctx.owner,
            properties=[models.ImageProperty(name=k, value=v) for k, v in extra.items()],
            tags=[models.ImageTag(value=t) for t in sorted(set(tags))], **base)
        duplicate = errors.Conflict(f"Image with identifier {image.id} already exists!")
        with self.db.session() as session:
            if image_rows.get_any(session, image.id) is not None:
                raise duplicate
            try:
                image_rows.add(session, image)
            except sa.exc.IntegrityError:  # created concurrently since the check above
                raise duplicate from None
        self._notify("image.create", image)
        return image

    def set_status(self, ctx: RequestContext, image_id: str, target: str,
                   expected: str | None = None, guard: Guard | None = None,
                   **fields: Any) -> models.Image:
        """Move the image to ``target`` (checked against the table) and set ``fields``.

        ``guard`` runs first in the same transaction and may raise to refuse the write: a
        task's runner passes the check that it still holds the task's lease (fencing).
        A ``target`` equal to the current status only sets ``fields``.
        """
        with self.db.session() as session:
            if guard is not None:
                guard(session)
            image = image_rows.get(session, ctx, image_id, for_update=True)
            if expected is not None and image.status != expected:
                raise errors.Conflict(f"Image {image_id} is {image.status}, expected {expected}")
            if target != image.status:
                _check_transition(image, target)
            previous = image.status
            image.status = target
            for key, value in fields.items():
                setattr(image, key, value)
        self._notify("image.update", image)
        if target == states.ACTIVE and previous != states.ACTIVE:
            self._notify("image.activate", image)
        return image

    def set_data(self, ctx: RequestContext, image_id: str, data: ImageData,
                 from_status: str, guard: Guard | None = None) -> models.Image:
        """Record stored bytes on the image and make it active in one commit.

        If the image changed state meanwhile (deleted, say), the bytes are removed again and
        Conflict is raised: an image is never active without matching bytes, and bytes are never
        left without an image.
        """
        optional = {"disk_format": data.disk_format, "virtual_size": data.virtual_size}
        try:
            return self.set_status(ctx, image_id, states.ACTIVE, expected=from_status,
                                   guard=guard, location=data.location, size=data.size,
                                   checksum=data.checksum, os_hash_algo=data.os_hash_algo,
                                   os_hash_value=data.os_hash_value,
                                   **{k: v for k, v in optional.items() if v is not None})
        except (errors.Conflict, errors.NotFound, errors.InvalidTransition):
            self.store.delete(data.location)
            raise

    def delete(self, ctx: RequestContext, image_id: str) -> None:
        with self.db.session() as session:
            image = image_rows.get(session, ctx, image_id, for_update=True)
            if not ctx.is_admin and image.owner != ctx.owner:
                raise errors.Forbidden("You are not permitted to delete this image.")
            if image.protected:
                raise errors.Forbidden(f"Image {image_id} is protected and cannot be deleted.")
            location = _mark_deleted(image)
        self._remove_data(image, location)

    def update(self, ctx: RequestContext, image_id: str,
               changes: Sequence[patch.Change]) -> models.Image:
        """Apply parsed ``PATCH`` changes, all or nothing; only the owner (or an admin) may."""
        with self.db.session() as session:
            image = self._owned(session, ctx, image_id, "modify")
            properties_before = attributes.property_count(image)
            patch.apply(image, changes, ctx, self.settings)
            properties = attributes.property_count(image)
            attributes.check_counts(properties if properties > properties_before else 0,
                                    len(image.tags), self.settings)
            image.updated_at = models.utcnow()
        self._notify("image.update", image)
        return image

    def add_tag(self, ctx: RequestContext, image_id: str, tag: str) -> None:
        """``PUT /v2/images/{id}/tags/{tag}``: idempotent, counted against ``image_tag_quota``."""
        tag = attributes.tag(tag)
        with self.db.session() as session:
            image = self._owned(session, ctx, image_id, "update tags for")
            if tag in {t.value for t in image.tags}:
                return
            image.tags.append(models.ImageTag(value=tag))
            attributes.check_counts(0, len(image.tags), self.settings)
            image.updated_at = models.utcnow()
        self._notify("image.update", image)

    def remove_tag(self, ctx: RequestContext, image_id: str, tag: str) -> None:
        with self.db.session() as session:
            image = self._owned(session, ctx, image_id, "delete tags for")
            if tag not in {t.value for t in image.tags}:
                raise errors.NotFound(f"Tag {tag[:64]!r} not found on image {image_id}.")
            image.tags[:] = [t for t in image.tags if t.value != tag]
            image.updated_at = models.utcnow()
        self._notify("image.update", image)

    def deactivate(self, ctx: RequestContext, image_id: str) -> None:
        """active → deactivated (already deactivated: nothing to do); Glance's 403 otherwise."""
        self._switch(ctx, image_id, states.ACTIVE, states.DEACTIVATED, "deactivate")

    def reactivate(self, ctx: RequestContext, image_id: str) -> None:
        self._switch(ctx, image_id, states.DEACTIVATED, states.ACTIVE, "reactivate")

    def _switch(self, ctx: RequestContext, image_id: str, source: str, target: str,
                action: str) -> None:
        with self.db.session() as session:
            image = self._owned(session, ctx, image_id, action)
            if image.status == target:
                return
            if image.status != source:
                raise errors.Forbidden(f"Not allowed to {action} image in status "
                                       f"'{image.status}'")
            states.check(source, target)
            image.status = target
        self._notify("image.update", image)

    @staticmethod
    def _owned(session: orm.Session, ctx: RequestContext, image_id: str, action: str) -> models.Image:
        """The image locked for a write: NotFound if ``ctx`` cannot see it, Forbidden unless
        ``ctx`` owns it or is an admin (Glance's ``modify_image`` policy)."""
        image = image_rows.get(session, ctx, image_id, for_update=True)
        if not ctx.is_admin and image.owner != ctx.owner:
            raise errors.Forbidden(f"You are not permitted to {action} image {image_id}.")
        return image

    def discard(self, ctx: RequestContext, image_id: str) -> None:
        """Remove an image a failed task created, bytes and all, whatever its status."""
        with self.db.session() as session:
            image = image_rows.get_any(session, image_id)
            if image is None or image.deleted:
                return
            location = _mark_deleted(image)
        self._remove_data(image, location)

    def set_property_atomic(self, ctx: RequestContext, image_id: str, name: str, value: str,
                            replaceable: Callable[[str], bool]) -> None:
        """Set property ``name`` in one locked write, unless it holds another value that
        ``replaceable(current)`` refuses (Conflict). Glance's ``set_property_atomic``."""
        with self.db.session() as session:
            image = image_rows.get(session, ctx, image_id, for_update=True)
            current = image.extra_properties.get(name)
            if current not in (None, value) and not replaceable(current):
                raise errors.Conflict(f"Image {image_id} has {name}={current}")
            image.set_property(name, value)
            image.updated_at = models.utcnow()

    def delete_property_atomic(self, image_id: str, name: str, value: str) -> bool:
        """Remove property ``name`` if it still holds ``value``; False when it did not."""
        with self.db.session() as session:
            image = image_rows.get_any(session, image_id)
            if image is None or image.deleted or image.extra_properties.get(name) != value:
                return False
            image.remove_property(name)
            image.updated_at = models.utcnow()
        return True

    def _remove_data(self, image: models.Image, location: str | None) -> None:
        """After the commit that deleted ``image``: its bytes, staged data, the event."""
        if location is not None:
            self.store.delete(location)
        self.staging.delete(image.id)
        self._notify("image.delete", image)

    def _notify(self, event_type: str, image: models.Image) -> None:
        self.notifier.notify(notifiers.Event(event_type, views.notification(image)))


def _check_transition(image: models.Image, target: str) -> None:
    try:
        states.check(image.status, target)
    except errors.InvalidTransition as exc:
        raise errors.Conflict(exc.message) from exc
    if (image.status in states.NEEDS_FORMATS_FROM and target in states.NEEDS_FORMATS_TO
            and not (image.disk_format and image.container_format)):
        raise errors.BadRequest("Properties disk_format, container_format must be set "
                                "prior to saving data.")


def _mark_deleted(image: models.Image) -> str | None:
    """Soft-delete ``image`` in its session; return the store location it had."""
    location = image.location
    image.status = states.DELETED
    image.deleted = True
    image.deleted_at = models.utcnow()
    image.location = None
    return location
