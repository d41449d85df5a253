"""Image operations shared by the Images API and by scripts.

Each operation runs in a visible order: validate, write, commit, *then* notify or remove bytes.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy import orm

from glint import errors
from glint import policy as policies
from glint.context import RequestContext
from glint.db import engine, models
from glint.db import images as image_rows
from glint.db import members as member_rows
from glint.images import attributes, locations, patch, states, views
from glint.notifiers import base as notifiers
from glint.scripts import contract
from glint.settings import Settings
from glint.stores import multi
from glint.stores.base import Store

LOG = logging.getLogger(__name__)
Guard = Callable[[orm.Session], None]  # see ImageService.set_status


# What a completed write produced: the contract's, so a script's ImageData is the service's.
ImageData = contract.ImageData


class ImageService:
    def __init__(self, db: engine.Database, store: Store, notifier: notifiers.Notifier,
                 settings: Settings, staging_area: Store, policy: policies.Policy) -> None:
        self.db = db
        self.store = store
        self.backends = multi.of(store)  # the stores by id (one, without multi-store)
        self.notifier = notifier
        self.settings = settings
        self.policy = policy
        # Where glance-direct data waits for its import (glint.images.staging).
        self.staging = staging_area

    # -- reads ---------------------------------------------------------------------------

    def get(self, ctx: RequestContext, image_id: str) -> models.Image:
        return self.check(ctx, image_id, "get_image")

    def check(self, ctx: RequestContext, image_id: str, action: str) -> models.Image:
        """The image if ``ctx`` may do ``action`` (a policy rule) on it.

        NotFound when ``ctx`` cannot see it (the database's rule, or ``get_image``),
        Forbidden when it can but the rule refuses.
        """
        with self.db.reader() as session:
            image = image_rows.get(session, ctx, image_id)
            self._authorize(session, ctx, image, action)
            return image

    def view(self, image: models.Image) -> dict[str, Any]:
        """The image as the API shows it (with ``stores`` on a multi-store glint)."""
        return views.api(image, locations.store_ids(image, self.backends))

    def list(self, ctx: RequestContext, query: image_rows.ImageQuery) -> Sequence[models.Image]:
        """One page of the images ``ctx`` may list (``GET /v2/images``)."""
        self.policy.enforce(ctx, "get_images", policies.project_target(ctx))
        with self.db.reader() as session:
            return image_rows.list_(session, ctx, query)

    def data_sources(self, ctx: RequestContext,
                     image_id: str) -> tuple[models.Image, Sequence[tuple[str, Store, str]]]:
        """The image and where its bytes can be read from, best first, as (store id, store,
        location) (none when it has no data), if ``ctx`` may download them."""
        image = self.check(ctx, image_id, "download_image")
        if image.status == states.DEACTIVATED and not self.policy.is_admin(ctx):
            raise errors.Forbidden("The requested image has been deactivated. "
                                   "Image data download is forbidden.")
        return image, locations.sources(image, self.backends)

    # -- writes --------------------------------------------------------------------------

    def create(self, ctx: RequestContext, values: Mapping[str, Any],
               status: str = states.QUEUED) -> models.Image:
        """Create an image from API-style ``values`` (base attributes and extra properties)."""
        base, extra, tags = attributes.split(values, self.settings)
        owner = base.pop("owner", None) or ctx.owner
        target = policies.project_target(ctx) | ({"owner": owner} if owner is not None else {})
        self.policy.enforce(ctx, "add_image", target)
        self._check_visibility(ctx, base.get("visibility"), target)
        image = models.Image(
            id=base.pop("id", None) or str(uuid.uuid4()), status=status, owner=owner,
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

    def set_attributes(self, ctx: RequestContext, image_id: str, fields: Mapping[str, Any],
                       properties: Mapping[str, str | None],
                       guard: Guard | None = None) -> models.Image:
        """Set columns and extra properties (None removes one) in one write, whatever the
        status: for a task that fills an image it holds the import lock of."""
        with self.db.session() as session:
            if guard is not None:
                guard(session)
            image = image_rows.get(session, ctx, image_id, for_update=True)
            for key, value in fields.items():
                setattr(image, key, value)
            for name, prop in properties.items():
                if prop is None:
                    image.remove_property(name)
                else:
                    image.set_property(name, prop)
        self._notify("image.update", image)
        return image

    def set_data(self, ctx: RequestContext, image_id: str, data: ImageData,
                 from_status: str, guard: Guard | None = None) -> models.Image:
        """Record stored bytes on the image and make it active in one commit.

        If the image changed state meanwhile (deleted, say), the bytes are removed again and
        Conflict is raised: an image is never active without matching bytes, and bytes are never
        left without an image.
        """
        optional = {"disk_format": data.disk_format, "virtual_size": data.virtual_size}
        held = locations.rows(self.backends, data)
        try:
            return self.set_status(ctx, image_id, states.ACTIVE, expected=from_status,
                                   guard=guard, location=data.location, size=data.size,
                                   checksum=data.checksum, os_hash_algo=data.os_hash_algo,
                                   os_hash_value=data.os_hash_value, locations=held,
                                   **{k: v for k, v in optional.items() if v is not None})
        except (errors.Conflict, errors.NotFound, errors.InvalidTransition):
            self._delete_bytes([(row.store, row.location) for row in held])
            raise

    def delete(self, ctx: RequestContext, image_id: str) -> None:
        with self.db.session() as session:
            image = self._locked(session, ctx, image_id, "delete_image")
            if image.protected:
                raise errors.Forbidden(f"Image {image_id} is protected and cannot be deleted.")
            held = _mark_deleted(image)
        self._remove_data(image, held)

    def update(self, ctx: RequestContext, image_id: str,
               changes: Sequence[patch.Change]) -> models.Image:
        """Apply parsed ``PATCH`` changes, all or nothing; only the owner (or an admin) may."""
        with self.db.session() as session:
            image = self._locked(session, ctx, image_id, "modify_image")
            for change in changes:
                if change.name == "visibility" and change.op != "remove":
                    self._check_visibility(ctx, change.value, policies.image_target(image))
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
            image = self._locked(session, ctx, image_id, "modify_image")
            if tag in {t.value for t in image.tags}:
                return
            image.tags.append(models.ImageTag(value=tag))
            attributes.check_counts(0, len(image.tags), self.settings)
            image.updated_at = models.utcnow()
        self._notify("image.update", image)

    def remove_tag(self, ctx: RequestContext, image_id: str, tag: str) -> None:
        with self.db.session() as session:
            image = self._locked(session, ctx, image_id, "modify_image")
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
            image = self._locked(session, ctx, image_id, action)
            if image.status == target:
                return
            if image.status != source:
                raise errors.Forbidden(f"Not allowed to {action} image in status "
                                       f"'{image.status}'")
            states.check(source, target)
            image.status = target
        self._notify("image.update", image)

    def _locked(self, session: orm.Session, ctx: RequestContext, image_id: str,
                action: str) -> models.Image:
        """The image locked for a write, if the policy lets ``ctx`` do ``action`` on it."""
        image = image_rows.get(session, ctx, image_id, for_update=True)
        self._authorize(session, ctx, image, action)
        return image

    def _authorize(self, session: orm.Session, ctx: RequestContext, image: models.Image,
                   action: str) -> None:
        """Enforce ``action`` on ``image``; ``member_id`` says whether it is shared with ctx."""
        shared = (ctx.project_id is not None and ctx.project_id != image.owner
                  and member_rows.get(session, image.id, ctx.project_id) is not None)
        target = policies.image_target(image, ctx.project_id if shared else None)
        self.policy.enforce_image(ctx, action, target)

    def _check_visibility(self, ctx: RequestContext, visibility: object,
                          target: policies.Target) -> None:
        """Making an image public or community is an action of its own (Glance's)."""
        action = {"public": "publicize_image", "community": "communitize_image"}.get(
            str(visibility))
        if action is not None:
            self.policy.enforce(ctx, action, target)

    def discard(self, ctx: RequestContext, image_id: str) -> None:
        """Remove an image a failed task created, bytes and all, whatever its status."""
        with self.db.session() as session:
            image = image_rows.get_any(session, image_id)
            if image is None or image.deleted:
                return
            held = _mark_deleted(image)
        self._remove_data(image, held)

    def set_property_atomic(self, ctx: RequestContext, image_id: str, name: str, value: str,
                            replaceable: Callable[[str], bool]) -> None:
        """Set property ``name`` in one locked write, unless it holds another value that
        ``replaceable(current)`` refuses (Conflict). Glance's ``set_property_atomic``."""
        with self.db.session() as session:
            set_property_locked(session, ctx, image_id, name, value, replaceable)

    def delete_property_atomic(self, image_id: str, name: str, value: str) -> bool:
        """Remove property ``name`` if it still holds ``value``; False when it did not."""
        with self.db.session() as session:
            image = image_rows.get_any(session, image_id)
            if image is None or image.deleted or image.extra_properties.get(name) != value:
                return False
            image.remove_property(name)
            image.updated_at = models.utcnow()
        return True

    def _remove_data(self, image: models.Image,
                     held: Sequence[tuple[str | None, str]]) -> None:
        """After the commit that deleted ``image``: its bytes (in every store), staged data,
        the event."""
        self._delete_bytes(held)
        self.staging.delete(image.id)
        self._notify("image.delete", image)

    def _delete_bytes(self, held: Sequence[tuple[str | None, str]]) -> None:
        for store_id, location in held:
            try:
                self.backends.backend(store_id).delete(location)
            except LookupError:  # a store no longer configured
                LOG.warning("image data %s is in store %s, which is not configured; "
                            "left there", location, store_id)

    def _notify(self, event_type: str, image: models.Image) -> None:
        self.notifier.notify(views.event(event_type, image))


def set_property_locked(session: orm.Session, ctx: RequestContext, image_id: str, name: str,
                        value: str, replaceable: Callable[[str], bool]) -> None:
    """:meth:`ImageService.set_property_atomic` in the caller's transaction: the image row stays
    locked until it commits, so whatever else it writes lands with the property, or nothing."""
    image = image_rows.get(session, ctx, image_id, for_update=True)
    current = image.extra_properties.get(name)
    if current not in (None, value) and not replaceable(current):
        raise errors.Conflict(f"Image {image_id} has {name}={current}")
    image.set_property(name, value)
    image.updated_at = models.utcnow()


def _check_transition(image: models.Image, target: str) -> None:
    try:
        states.check(image.status, target)
    except errors.InvalidTransition as exc:
        raise errors.Conflict(exc.message) from exc
    if (image.status in states.NEEDS_FORMATS_FROM and target in states.NEEDS_FORMATS_TO
            and not (image.disk_format and image.container_format)):
        raise errors.BadRequest("Properties disk_format, container_format must be set "
                                "prior to saving data.")


def _mark_deleted(image: models.Image) -> list[tuple[str | None, str]]:
    """Soft-delete ``image`` in its session; return the (store, location) pairs it had."""
    held = locations.held(image)
    image.status = states.DELETED
    image.deleted = True
    image.deleted_at = models.utcnow()
    image.location = None
    image.locations.clear()
    return held
