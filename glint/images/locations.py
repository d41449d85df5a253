"""Which stores hold an image's bytes (multi-store), and changing that.

An image with data has one ``image_locations`` row per store holding its bytes; ``store`` None
means the default store (rows written without multi-store, and those migrated from
``images.location``). ``images.location`` keeps the first copy's key: code that knows of one
store reads it, and it says whether the image has data at all.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy import orm

from glint import errors
from glint.context import RequestContext
from glint.db import engine, models
from glint.db import images as image_rows
from glint.images import states, views
from glint.notifiers import base as notifiers
from glint.stores.base import Store
from glint.stores.multi import MultiStore

if TYPE_CHECKING:
    from glint.images.service import ImageData, ImageService

ACTIVE = "active"
# Import bookkeeping properties (Glance's): stores an import has still to do, stores it failed.
IMPORTING = "os_glance_importing_to_stores"
FAILED = "os_glance_failed_import"
Guard = Callable[[orm.Session], None]


def held(image: models.Image) -> list[tuple[str | None, str]]:
    """The (store, location) pairs holding ``image``'s bytes, first written first."""
    # An image made in this process and never read back has no rows loaded (nor any rows).
    loaded = "locations" not in sa.inspect(image).unloaded
    pairs = [(row.store, row.location) for row in (image.locations if loaded else [])
             if row.status == ACTIVE]
    if not pairs and image.location is not None:  # written before image_locations existed
        pairs = [(None, image.location)]
    return pairs


def store_ids(image: models.Image, backends: MultiStore) -> list[str] | None:
    """The ids of the stores holding the bytes, sorted; None without multi-store or data
    (Glance shows ``stores`` only then)."""
    pairs = held(image)
    if not backends.multi or not pairs:
        return None
    return sorted({backends.resolve(store_id) for store_id, _location in pairs})


def sources(image: models.Image, backends: MultiStore,
            prefer: Iterable[str] = ()) -> list[tuple[str, Store, str]]:
    """Where to read the bytes from, best first, as (store id, store, location): the stores
    of ``prefer`` holding them, then the default store, then the other configured ones that
    do, first written first. A reader moves down the list when a copy cannot be read."""
    found = {backends.resolve(store_id): location for store_id, location in held(image)}
    order = dict.fromkeys(store_id for store_id in [*prefer, backends.default, *found]
                          if store_id in found and store_id in backends.backends)
    return [(store_id, backends.backends[store_id], found[store_id]) for store_id in order]



def rows(backends: MultiStore, data: ImageData) -> list[models.ImageLocation]:
    """The location rows a completed write records (its store's, then its copies')."""
    first = (data.store or backends.default) if backends.multi else None
    return [models.ImageLocation(store=first, location=data.location, status=ACTIVE),
            *(models.ImageLocation(store=store_id, location=location, status=ACTIVE)
              for store_id, location in data.copies)]


class Locations:
    """Adding and removing one store's copy of an active image's bytes."""

    def __init__(self, images: ImageService, db: engine.Database,
                 notifier: notifiers.Notifier) -> None:
        self.images = images
        self.db = db
        self.notifier = notifier
        self.backends = images.backends

    def add(self, ctx: RequestContext, image_id: str, store_id: str, location: str,
            guard: Guard | None = None) -> models.Image:
        """Record a copy in ``store_id`` (copy-image, or an import's further stores).

        The image must be active and not hold a copy there yet (Conflict); on any refusal the
        new bytes are removed again.
        """
        try:
            with self.db.session() as session:
                if guard is not None:
                    guard(session)
                image = image_rows.get(session, ctx, image_id, for_update=True)
                if image.status != states.ACTIVE:
                    raise errors.Conflict(f"Image {image_id} is {image.status}; copies are "
                                          "added to active images only")
                if store_id in self._stores_of(image):
                    raise errors.Conflict(f"Image {image_id} is already in store {store_id}")
                image.locations.append(models.ImageLocation(store=store_id, location=location,
                                                            status=ACTIVE))
                image.updated_at = models.utcnow()
        except BaseException:
            self.backends.backend(store_id).delete(location)
            raise
        self.notifier.notify(views.event("image.update", image))
        return image

    def delete_from_store(self, ctx: RequestContext, store_id: str, image_id: str) -> None:
        """``DELETE /v2/stores/{store_id}/{image_id}``, with Glance's answers: 404 without
        multi-store or when the image is not in the store, 409 for a store not configured or
        an image not active, 403 for the last copy."""
        if not self.backends.multi:
            raise errors.NotFound("Multi-store is not configured: there are no stores to "
                                  "delete image data from")
        if store_id not in self.backends.backends:
            raise errors.Conflict(f"The selected store {store_id[:64]} is not available on "
                                  "this node.")
        self.images.check(ctx, image_id, "delete_image_location")
        with self.db.session() as session:
            image = image_rows.get(session, ctx, image_id, for_update=True)
            if image.status != states.ACTIVE:
                raise errors.Conflict("It's not allowed to remove image data from store if "
                                      "image status is not 'active'")
            pairs = held(image)
            if len(pairs) <= 1:
                raise errors.Forbidden("Cannot delete image data from the only store "
                                       "containing it. Consider deleting the image instead "
                                       "if you want to remove all image data")
            gone = [row for row in image.locations
                    if self.backends.resolve(row.store) == store_id]
            if not gone:
                raise errors.NotFound(f"Image {image_id} is not stored in store {store_id}.")
            image.locations[:] = [row for row in image.locations if row not in gone]
            image.location = image.locations[0].location
            image.updated_at = models.utcnow()
        for row in gone:
            self.backends.backend(store_id).delete(row.location)
        self.notifier.notify(views.event("image.update", image))

    def drop(self, image_id: str, store_id: str, guard: Guard | None = None) -> None:
        """Undo :meth:`add`: forget ``store_id``'s copy and remove its bytes (never the last
        copy; an import reverting the copies it made)."""
        with self.db.session() as session:
            if guard is not None:
                guard(session)
            image = image_rows.get_any(session, image_id)
            if image is None:
                return
            gone = [row for row in image.locations
                    if self.backends.resolve(row.store) == store_id]
            if not gone or len(gone) == len(image.locations):
                return
            image.locations[:] = [row for row in image.locations if row not in gone]
            image.updated_at = models.utcnow()
        for row in gone:
            self.backends.backend(store_id).delete(row.location)

    def progress(self, image_id: str, *, start: Iterable[str] | None = None,
                 done: str | None = None, failed: Iterable[str] = (),
                 guard: Guard | None = None) -> None:
        """Update an import's bookkeeping properties: ``start`` names the stores to do (and
        clears them from the failed ones), ``done`` and ``failed`` leave the stores to do."""
        failed = list(failed)
        with self.db.session() as session:
            if guard is not None:
                guard(session)
            image = image_rows.get_any(session, image_id)
            if image is None or image.deleted:
                return
            props = image.extra_properties
            importing = _split(props.get(IMPORTING))
            failures = _split(props.get(FAILED))
            if start is not None:
                importing = list(dict.fromkeys(start))
                failures = [f for f in failures if f not in importing]
            importing = [i for i in importing if i != done and i not in failed]
            failures += [f for f in failed if f not in failures]
            image.set_property(IMPORTING, ",".join(importing))
            image.set_property(FAILED, ",".join(failures))
            image.updated_at = models.utcnow()

    def importing(self, image_id: str) -> list[str]:
        """The stores an import has still to do."""
        with self.db.reader() as session:
            image = image_rows.get_any(session, image_id)
            return [] if image is None else _split(image.extra_properties.get(IMPORTING))

    def _stores_of(self, image: models.Image) -> set[str]:
        return {self.backends.resolve(store_id) for store_id, _location in held(image)}


def _split(value: str | None) -> list[str]:
    return [item for item in (value or "").split(",") if item]
