"""The node-local image cache: look-ups, fills, LRU eviction, the prefetch queue.

Layout of the cache directory (``image_cache_dir``)::

    index.sqlite          what is cached (glint.cache.index)
    <image id>            a cached image's bytes, verified when filled
    incomplete/<image id> a fill under way (glint.cache.fill)
    queue/<image id>      an image queued for prefetch (PUT /v2/cache/{id})

A cached file is served only while it is exactly as filled: its size and mtime are the
index's and the index's md5 is the image's. Anything else is discarded (logged) and the image
is read from its store. Nothing here decides who may see an image: callers serve from the
cache only what the image service already let them download, and only active images.
"""

from __future__ import annotations

import logging
import os
import pathlib
import time
from typing import TYPE_CHECKING, BinaryIO

from glint import errors, metrics
from glint.cache import fill as fills
from glint.cache import index as indexes
from glint.cache.fill import Expected, Fill
from glint.settings import Settings

if TYPE_CHECKING:
    from glint.scripts.contract import ScriptContext

LOG = logging.getLogger(__name__)
WAIT = 0.5  # seconds between looks at another fill of an image being prefetched


class ImageCache:
    def __init__(self, directory: pathlib.Path, max_size: int, stall_time: float,
                 fill_local: bool = False) -> None:
        """``fill_local``: downloads from stores with local files (filesystem) fill it too."""
        self.directory, self.max_size, self.stall_time = directory, max_size, stall_time
        self.fill_local = fill_local
        self.incomplete = directory / "incomplete"
        self.queue_dir = directory / "queue"
        for path in (directory, self.incomplete, self.queue_dir):
            path.mkdir(parents=True, exist_ok=True)
        self.index = indexes.Index(directory / "index.sqlite")

    @classmethod
    def from_settings(cls, settings: Settings) -> ImageCache | None:
        """The cache the settings describe; None when it is off."""
        if not settings.effective_image_cache_enabled:
            return None
        return cls(settings.effective_image_cache_dir, settings.image_cache_max_size,
                   settings.image_cache_stall_time,
                   fill_local=settings.image_cache_enabled is True)

    def close(self) -> None:
        self.index.close()

    def after_fork(self) -> None:
        self.index.after_fork()

    # -- serving -------------------------------------------------------------------------

    def open(self, expected: Expected) -> BinaryIO | None:
        """The cached file of the image, opened and counted as a hit; None when not cached
        (or when the cached copy is no longer what was filled: then it is discarded)."""
        entry = self.index.get(expected.image_id)
        if entry is None:
            metrics.CACHE_REQUESTS.labels("miss").inc()
            return None
        try:
            file = open(self.directory / expected.image_id, "rb", buffering=0)  # noqa: SIM115
        except FileNotFoundError:
            self.index.remove(expected.image_id)
            metrics.CACHE_REQUESTS.labels("miss").inc()
            return None
        stat = os.fstat(file.fileno())
        if (stat.st_size, stat.st_mtime_ns, entry.checksum) != (
                expected.size, entry.mtime_ns, expected.checksum) or entry.size != stat.st_size:
            file.close()
            LOG.error("cached copy of image %s changed since it was filled: discarded",
                      expected.image_id)
            metrics.CACHE_REQUESTS.labels("discarded").inc()
            self.delete(expected.image_id)
            return None
        self.index.hit(expected.image_id)
        metrics.CACHE_REQUESTS.labels("hit").inc()
        return file

    def fill(self, expected: Expected) -> Fill | None:
        """A fill of the image; None when another is under way or it could never fit."""
        if expected.size > self.max_size:
            return None
        path = self.incomplete / expected.image_id
        fd = fills.claim(path, self.stall_time)
        return Fill(expected, path, fd, self._publish) if fd is not None else None

    def filling(self, image_id: str) -> bool:
        """Whether a fill of the image is under way (and not stalled)."""
        return not fills.stalled(self.incomplete / image_id, self.stall_time)

    def _publish(self, fill: Fill, inode: int) -> bool:
        """Index then rename the verified fill; evict to the size limit."""
        try:
            stat = fill.path.stat()
        except FileNotFoundError:
            return False
        if stat.st_ino != inode:  # abandoned meanwhile: another fill has the name now
            return False
        image_id = fill.expected.image_id
        self.index.add(image_id, stat.st_size, fill.expected.checksum, stat.st_mtime_ns)
        os.rename(fill.path, self.directory / image_id)
        LOG.info("image %s cached (%d bytes)", image_id, stat.st_size)
        self.evict(keep=image_id)
        return True

    # -- management ----------------------------------------------------------------------

    def cached(self, image_id: str) -> bool:
        return self.index.get(image_id) is not None

    def entries(self) -> list[indexes.Entry]:
        return self.index.entries()

    def delete(self, image_id: str) -> bool:
        """Remove the image from the cache; whether it was there."""
        found = self.index.get(image_id) is not None
        self.index.remove(image_id)
        (self.directory / image_id).unlink(missing_ok=True)
        return found

    def clear(self) -> int:
        """Remove every cached image; how many there were."""
        entries = self.index.entries()
        for entry in entries:
            self.delete(entry.image_id)
        return len(entries)

    def evict(self, keep: str | None = None) -> int:
        """Remove the least recently accessed images until the cache fits its size limit;
        ``keep`` goes last. How many were removed."""
        entries = self.index.entries()
        total = sum(entry.size for entry in entries)
        entries.sort(key=lambda entry: entry.image_id == keep)
        removed = 0
        for entry in entries:
            if total <= self.max_size:
                break
            LOG.info("image %s evicted from the cache (least recently used)", entry.image_id)
            self.delete(entry.image_id)
            metrics.CACHE_EVICTIONS.inc()
            total -= entry.size
            removed += 1
        return removed

    # -- the prefetch queue --------------------------------------------------------------

    def queue(self, image_id: str) -> None:
        (self.queue_dir / image_id).touch()

    def queued(self) -> list[str]:
        return sorted(path.name for path in self.queue_dir.iterdir())

    def is_queued(self, image_id: str) -> bool:
        return (self.queue_dir / image_id).exists()

    def dequeue(self, image_id: str) -> bool:
        path = self.queue_dir / image_id
        found = path.exists()
        path.unlink(missing_ok=True)
        return found

    def clear_queue(self) -> int:
        names = self.queued()
        for name in names:
            self.dequeue(name)
        return len(names)

    def prefetch(self, ctx: ScriptContext, image_id: str) -> bool:
        """The ``cache_prefetch`` task's work (:mod:`glint.scripts.cache_prefetch`): fill the
        cache with the image if it is still queued (an image taken off the queue before the
        task runs is left alone), then take it off the queue. While a download is filling the
        same image this waits for it, or for it to stall, so a re-run after a lost worker
        finishes the job. True when the image is cached afterwards."""
        if not self.cached(image_id) and self.is_queued(image_id):
            try:
                self._prefetch(ctx, image_id)
            finally:
                self.dequeue(image_id)
        return self.cached(image_id)

    def _prefetch(self, ctx: ScriptContext, image_id: str) -> None:
        image, copy = ctx.open_image(image_id, "cache", "cached")
        expected = Expected.of(image)
        if expected is None or expected.size > self.max_size:
            raise errors.ScriptError(f"Image {image_id} cannot be cached: it has no checksum, "
                                     "or it is larger than image_cache_max_size")
        while (fill := self.fill(expected)) is None:  # a download is filling it
            if self.cached(image_id):
                return
            _check_cancel(ctx)
            time.sleep(WAIT)
        for _chunk in fill.wrap(copy.read()):
            ctx.report_progress(fill.size, expected.size)
            _check_cancel(ctx)
        if not fill.done:
            raise errors.ScriptError(f"Image {image_id}'s data in store {copy.store_id} does "
                                     "not match its checksum or multihash: not cached")

    # -- start-up ------------------------------------------------------------------------

    def rebuild(self) -> int:
        """Make the index and the files agree, trusting neither a file without a row nor a
        row whose file is missing or changed; remove stalled fills. How many were dropped."""
        dropped = 0
        for entry in self.index.entries():
            try:
                stat = (self.directory / entry.image_id).stat()
            except FileNotFoundError:
                stat = None
            if stat is None or (stat.st_size, stat.st_mtime_ns) != (entry.size, entry.mtime_ns):
                self.delete(entry.image_id)
                dropped += 1
        indexed = {entry.image_id for entry in self.index.entries()}
        for path in self.directory.iterdir():
            if path.is_file() and not path.name.startswith("index.sqlite") and (
                    path.name not in indexed):
                LOG.warning("cache file %s is not in the index: removed", path.name)
                path.unlink(missing_ok=True)
                dropped += 1
        for path in self.incomplete.iterdir():
            if fills.stalled(path, self.stall_time):
                path.unlink(missing_ok=True)
                dropped += 1
        return dropped


def _check_cancel(ctx: ScriptContext) -> None:
    if ctx.should_cancel():
        raise errors.ScriptError("Prefetch cancelled")
