"""Image operations shared by the Images API and by scripts.

Each operation runs in a visible order: validate, write, commit, *then* notify or remove bytes.
"""

from __future__ import annotations

import dataclasses
import logging
import uuid
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from glint import errors
from glint.context import RequestContext
from glint.db import engine, models
from glint.db import images as image_rows
from glint.images import states, views
from glint.notifiers import base as notifiers
from glint.settings import Settings
from glint.stores.base import Store

LOG = logging.getLogger(__name__)

VISIBILITIES = ("public", "community", "shared", "private")
# Attributes a client may set on create; the rest of Glance's base attributes are read-only.
SETTABLE = frozenset({"id", "name", "visibility", "protected", "os_hidden", "disk_format",
                      "container_format", "min_disk", "min_ram", "tags", "owner"})
READ_ONLY = frozenset({"status", "checksum", "os_hash_algo", "os_hash_value", "size",
                       "virtual_size", "created_at", "updated_at", "direct_url", "self", "file",
                       "schema", "stores", "locations", "location", "deleted", "deleted_at"})
RESERVED_PREFIX = "os_glance"


@dataclasses.dataclass(frozen=True)
class ImageData:
    """What a completed write produced."""

    location: str
    size: int
    checksum: str
    os_hash_algo: str
    os_hash_value: str


class ImageService:
    def __init__(self, db: engine.Database, store: Store, notifier: notifiers.Notifier,
                 settings: Settings) -> None:
        self.db = db
        self.store = store
        self.notifier = notifier
        self.settings = settings

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
        base, extra, tags = _split(values, self.settings, ctx)
        image = models.Image(
            id=base.pop("id", None) or str(uuid.uuid4()), status=status,
            owner=base.pop("owner", None) or ctx.owner,
            properties=[models.ImageProperty(name=k, value=v) for k, v in extra.items()],
            tags=[models.ImageTag(value=t) for t in sorted(set(tags))], **base)
        with self.db.session() as session:
            if image_rows.get_any(session, image.id) is not None:
                raise errors.Conflict(f"Image with identifier {image.id} already exists!")
            image_rows.add(session, image)
        self._notify("image.create", image)
        return image

    def set_status(self, ctx: RequestContext, image_id: str, target: str,
                   expected: str | None = None, **fields: Any) -> models.Image:
        """Move the image to ``target`` (checked against the table) and set ``fields``."""
        with self.db.session() as session:
            image = image_rows.get(session, ctx, image_id, for_update=True)
            if expected is not None and image.status != expected:
                raise errors.Conflict(f"Image {image_id} is {image.status}, expected {expected}")
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
                 from_status: str) -> models.Image:
        """Record stored bytes on the image and make it active in one commit.

        If the image changed state meanwhile (deleted, say), the bytes are removed again and
        Conflict is raised: an image is never active without matching bytes, and bytes are never
        left without an image.
        """
        try:
            return self.set_status(ctx, image_id, states.ACTIVE, expected=from_status,
                                   location=data.location, size=data.size,
                                   checksum=data.checksum, os_hash_algo=data.os_hash_algo,
                                   os_hash_value=data.os_hash_value)
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
            location = image.location
            image.status = states.DELETED
            image.deleted = True
            image.deleted_at = models.utcnow()
            image.location = None
        if location is not None:
            self.store.delete(location)
        self._notify("image.delete", image)

    def discard(self, ctx: RequestContext, image_id: str) -> None:
        """Remove an image a failed task created, bytes and all, whatever its status."""
        with self.db.session() as session:
            image = image_rows.get_any(session, image_id)
            if image is None or image.deleted:
                return
            location = image.location
            image.status = states.DELETED
            image.deleted = True
            image.deleted_at = models.utcnow()
            image.location = None
        if location is not None:
            self.store.delete(location)
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


def _split(values: Mapping[str, Any], settings: Settings,
           ctx: RequestContext) -> tuple[dict[str, Any], dict[str, str], list[str]]:
    """Split API values into base attributes, extra properties and tags, validating each."""
    base: dict[str, Any] = {}
    extra: dict[str, str] = {}
    tags: list[str] = []
    for key, value in values.items():
        if key in READ_ONLY:
            raise errors.Forbidden(f"Attribute '{key}' is read-only.")
        if key.startswith(RESERVED_PREFIX):
            raise errors.Forbidden(f"Attribute '{key}' is reserved.")
        if key == "tags":
            tags = _tags(value)
        elif key in SETTABLE:
            base[key] = _base_value(key, value, settings, ctx)
        else:
            extra[key] = _extra_value(key, value)
    return base, extra, tags


def _base_value(key: str, value: Any, settings: Settings, ctx: RequestContext) -> Any:
    choices = {"disk_format": settings.disk_formats,
               "container_format": settings.container_formats,
               "visibility": VISIBILITIES}
    if key in choices:
        if value is None and key != "visibility":
            return None
        if value not in choices[key]:
            raise errors.BadRequest(f"Invalid value {value!r} for '{key}': "
                                    f"must be one of {', '.join(choices[key])}")
        return value
    if key in ("protected", "os_hidden"):
        if not isinstance(value, bool):
            raise errors.BadRequest(f"Invalid value {value!r} for '{key}': must be a boolean")
        return value
    if key in ("min_disk", "min_ram"):
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**31:
            raise errors.BadRequest(f"Invalid value {value!r} for '{key}': must be an integer >= 0")
        return value
    if key == "id":
        return _uuid(value)
    if key == "owner" and value != ctx.owner and not ctx.is_admin:
        raise errors.Forbidden("Only an admin may set the owner of an image to another project.")
    if value is not None and not isinstance(value, str):
        raise errors.BadRequest(f"Invalid value {value!r} for '{key}': must be a string")
    if isinstance(value, str) and len(value) > 255:
        raise errors.BadRequest(f"Invalid value for '{key}': longer than 255 characters")
    return value


def _extra_value(key: str, value: Any) -> str:
    if not key or len(key) > 255:
        raise errors.BadRequest(f"Invalid property name {key[:40]!r}: 1 to 255 characters")
    if not isinstance(value, str):
        raise errors.BadRequest(f"Invalid value for property '{key}': must be a string")
    return value


def _tags(value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(t, str) and 0 < len(t) <= 255
                                              for t in value):
        raise errors.BadRequest("Invalid value for 'tags': must be a list of strings "
                                "of 1 to 255 characters")
    return list(value)


def _uuid(value: Any) -> str:
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        raise errors.BadRequest(f"Invalid value {value!r} for 'id': must be a UUID") from None
