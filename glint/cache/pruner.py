"""Removes from the image cache what it must no longer hold: images deleted (or no longer
active) and whatever is over the size limit. Downloads never serve those, since an image is
checked in the database before its cached copy is used: this only gives their space back.

``glint serve`` runs :class:`Pruner` on a thread every ``reaper_interval`` seconds (the
reaper's cadence); ``glint cache prune`` runs one pass.
"""

from __future__ import annotations

import logging
import threading

import sqlalchemy as sa

from glint.cache.cache import ImageCache
from glint.db import engine, models
from glint.images import states

LOG = logging.getLogger(__name__)


def prune(cache: ImageCache, db: engine.Database) -> int:
    """One pass: remove the cached images that are not active any more, then evict to the
    limit. How many were removed."""
    cached = [entry.image_id for entry in cache.entries()]
    if not cached:
        return 0
    with db.reader() as session:
        live = set(session.scalars(sa.select(models.Image.id).where(
            models.Image.id.in_(cached), models.Image.deleted.is_(False),
            models.Image.status == states.ACTIVE)))
    gone = [image_id for image_id in cached if image_id not in live]
    for image_id in gone:
        LOG.info("image %s is no longer active: removed from the cache", image_id)
        cache.delete(image_id)
    return len(gone) + cache.evict()


class Pruner:
    def __init__(self, cache: ImageCache, db: engine.Database, interval: float) -> None:
        self.cache, self.db, self.interval = cache, db, interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self.interval > 0 and self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="glint-cache-pruner",
                                            daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                prune(self.cache, self.db)
            except Exception:  # the next pass tries again (the database may be down)
                LOG.exception("image cache prune failed")
