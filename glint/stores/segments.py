"""Segmented writes, shared by the object stores (``swift``, ``s3``); their reads are
:mod:`glint.stores.reads`.

An object store takes a large object as segments (Swift SLO segments, S3 multipart parts)
that may be sent in parallel. :class:`SegmentedWriter` cuts the bytes written to it into
segments, uploads several at once on a small thread pool and, for memory to stay bounded
whatever the image size, makes ``write`` wait while the segments in flight hold
``in_flight_bytes`` already. An image smaller than one segment is sent as one plain object.
Subclasses say how a segment, a single object and the final manifest are sent (each checked
by the server on the way: Swift against the md5 sent as the ETag, S3 against the signed
SHA-256 of the payload), and how to drop what was sent. A segment is hashed on the thread
that uploads it, so the hashing overlaps the data path's own and the other uploads.

Each segment is filled in a buffer of its own size taken from a :class:`BufferPool`, and the
upload sends that buffer as it is (a ``memoryview``, never a copy); the buffer goes back to
the pool when the upload ends, failed or not. A write thus allocates at most in-flight + 1
buffers, once, instead of joining each segment's pieces into a fresh ``bytes``: that join
briefly held a segment twice and left glibc's arenas fragmented by the many segment-sized
blocks freed from other threads (BENCHMARKS.md, issue 15).
"""

from __future__ import annotations

import abc
import concurrent.futures
import dataclasses
import hashlib
import logging
import threading

from glint import errors
from glint.stores import base

LOG = logging.getLogger(__name__)

MiB = 1024 * 1024
MAX_SEGMENTS = 1000  # Swift's SLO and s3api limits (AWS allows 10 000 parts)
MAX_SEGMENT_SIZE = 5 * 1024 * MiB  # Swift's max_file_size, S3's largest part
STEADY_SEGMENTS = 500  # segments of the configured size before sizes grow
GROWTH_EVERY = 32  # after those, the size doubles every this many segments


def segment_size(number: int, base_size: int) -> int:
    """The size of segment ``number`` (from 1) for a configured size of ``base_size``.

    The first ``STEADY_SEGMENTS`` have the configured size, so memory stays at
    ``segment_size`` x segments in flight for any image up to 500 segments (4 GiB at 8
    MiB). Past that the size doubles every ``GROWTH_EVERY`` segments, up to 5 GiB, so an
    image of unknown size can still reach about 1 TiB within 1000 segments.
    """
    if number <= STEADY_SEGMENTS:
        return base_size
    doublings = (number - STEADY_SEGMENTS - 1) // GROWTH_EVERY + 1
    return min(base_size << doublings, MAX_SEGMENT_SIZE)


class BufferPool:
    """Segment buffers for one write, reused once their upload ends.

    The writer's own accounting (at most ``in_flight`` segments queued or uploading, plus the
    one being filled) bounds how many are ever allocated. A buffer of another size than the
    one asked for (segments grow past ``STEADY_SEGMENTS``) is dropped, not reused.
    """

    def __init__(self) -> None:
        self._idle: list[bytearray] = []
        self._lock = threading.Lock()
        self.allocated = 0  # buffers made so far (tests check the bound)

    def take(self, size: int) -> bytearray:
        with self._lock:
            while self._idle:
                buffer = self._idle.pop()
                if len(buffer) == size:
                    return buffer
            self.allocated += 1
        return bytearray(size)

    def give(self, buffer: bytearray) -> None:
        with self._lock:
            self._idle.append(buffer)

    @property
    def idle(self) -> int:
        """How many buffers are back in the pool."""
        with self._lock:
            return len(self._idle)


def exact(view: memoryview) -> bytes | bytearray:
    """``view``'s bytes as a client library takes them: the buffer itself when ``view`` spans
    all of it (every full segment: no copy), else a copy (the last, shorter one)."""
    whole = view.obj
    if isinstance(whole, bytearray) and len(whole) == view.nbytes:
        return whole
    return bytes(view)


@dataclasses.dataclass(frozen=True)
class Segment:
    """One uploaded segment: its number (from 1), size, and the ETag the server returned."""

    number: int
    size: int
    etag: str


class SegmentedWriter(base.WriterBase, abc.ABC):
    """A writer that uploads its bytes as segments, several at once.

    ``store`` names the store in error messages. Uploads run on ``in_flight`` threads;
    ``write`` blocks while the segments queued or uploading hold ``in_flight`` segments'
    bytes, and raises the first upload error as soon as it is seen.
    """

    def __init__(self, *, store: str, segment_size: int, in_flight: int) -> None:
        self._store = store
        self._base_size = segment_size
        self._budget = segment_size * in_flight
        self.buffers = BufferPool()
        self._buffer: bytearray | None = None  # the segment being filled
        self._filled = 0
        self._sending: dict[int, bytearray] = {}  # segment number -> its buffer, until sent
        self._number = 0  # segments handed to the pool
        self._held = 0  # bytes of segments not yet uploaded
        self._cond = threading.Condition()
        self._pool = concurrent.futures.ThreadPoolExecutor(
            in_flight, thread_name_prefix=f"glint-{store}-segment")
        self._futures: list[concurrent.futures.Future[Segment]] = []
        self._closed = False

    # -- what a store provides -------------------------------------------------------------

    @abc.abstractmethod
    def _put_segment(self, number: int, data: memoryview) -> str:
        """Upload segment ``number``, which the server checks arrived intact (Swift's with
        :meth:`check_etag`); return the ETag the manifest records for it. ``data`` is a view
        of a pooled buffer: valid until this returns, so it must not be kept."""

    @abc.abstractmethod
    def _put_single(self, data: memoryview) -> str:
        """Store ``data`` as the whole object, checked as a segment is; return the location.
        (``data`` as for :meth:`_put_segment`.)"""

    @abc.abstractmethod
    def _put_manifest(self, segments: list[Segment]) -> str:
        """Join ``segments`` into the object; return the location."""

    @abc.abstractmethod
    def _discard(self, segments: list[Segment]) -> None:
        """Remove every segment uploaded (``segments`` are those known to have finished)."""

    @abc.abstractmethod
    def _error(self, exc: Exception) -> errors.StoreError:
        """The StoreError to raise for a client library's exception (naming the store)."""

    # -- the writer ------------------------------------------------------------------------

    def write(self, data: bytes | memoryview) -> None:
        assert not self._closed, "write after commit/abort"
        view = memoryview(data).cast("B")
        while view:
            size = segment_size(self._number + 1, self._base_size)
            if self._buffer is None:
                self._buffer = self.buffers.take(size)
            piece = view[:size - self._filled]
            self._buffer[self._filled:self._filled + len(piece)] = piece
            self._filled += len(piece)
            view = view[len(piece):]
            if self._filled == size:
                self._submit()

    def commit(self) -> str:
        assert not self._closed, "commit after commit/abort"
        try:
            if self._number == 0:
                location = self._put_single(memoryview(self._buffer or b"")[:self._filled])
            else:
                if self._filled:
                    self._submit()
                location = self._put_manifest(self._wait_all())
        except errors.StoreError:
            self.abort()
            raise
        except Exception as exc:
            self.abort()
            raise self._error(exc) from exc
        self._closed = self._committed = True
        self._pool.shutdown(wait=False)
        return location

    def abort(self) -> None:
        if self._closed and self._committed:
            return
        self._closed = True
        for future in self._futures:
            future.cancel()
        self._pool.shutdown(wait=True)
        for buffer in self._sending.values():  # the cancelled segments'
            self.buffers.give(buffer)
        self._sending.clear()
        if self._buffer is not None:
            self.buffers.give(self._buffer)
            self._buffer = None
        done = [f.result() for f in self._futures
                if not f.cancelled() and f.exception() is None]
        try:
            self._discard(done)
        except Exception:  # the reaper removes what is left, after store_tmp_max_age
            LOG.warning("%s store: could not remove the segments of an aborted write",
                        self._store, exc_info=True)

    # -- internals -------------------------------------------------------------------------

    def _submit(self) -> None:
        buffer, size = self._buffer, self._filled
        assert buffer is not None
        with self._cond:
            while self._held and self._held + size > self._budget:
                self._raise_failed()
                self._cond.wait(0.1)
            self._raise_failed()
            self._held += size
        self._number += 1
        if self._number > MAX_SEGMENTS:
            raise errors.StoreError(f"{self._store} store: the image needs more than "
                                    f"{MAX_SEGMENTS} segments; raise the segment size")
        self._buffer, self._filled = None, 0
        self._sending[self._number] = buffer
        self._futures.append(self._pool.submit(self._upload, self._number, size))

    def _upload(self, number: int, size: int) -> Segment:
        buffer = self._sending[number]
        try:
            # Not released here: a client library may keep a reference to the last request.
            data = memoryview(buffer)[:size]
            return Segment(number, size, self._put_segment(number, data).strip('"'))
        finally:
            # Back to the pool before the budget is freed: the writer takes it next.
            del self._sending[number]
            self.buffers.give(buffer)
            with self._cond:
                self._held -= size
                self._cond.notify_all()

    def check_etag(self, what: str, etag: str, md5: str) -> None:
        """StoreError unless the server's ``etag`` for ``what`` is ``md5``."""
        if etag.strip('"') != md5:
            raise errors.StoreError(f"{self._store} store: {what} was stored with ETag {etag}, "
                                    f"not its md5 {md5}")

    def _raise_failed(self) -> None:
        for future in self._futures:
            if future.done() and not future.cancelled() and future.exception() is not None:
                self._raise(future)

    def _raise(self, future: concurrent.futures.Future[Segment]) -> None:
        exc = future.exception()
        if isinstance(exc, errors.StoreError):
            raise exc
        assert isinstance(exc, Exception)
        raise self._error(exc) from exc

    def _wait_all(self) -> list[Segment]:
        concurrent.futures.wait(self._futures, return_when=concurrent.futures.FIRST_EXCEPTION)
        self._raise_failed()
        return [f.result() for f in self._futures]


def describe(exc: BaseException) -> str:
    """What went wrong, in words that quote no request (it could carry a credential)."""
    if isinstance(exc, OSError) or "Connect" in type(exc).__name__:
        return f"cannot reach the server ({type(exc).__name__})"
    return type(exc).__name__


def md5(data: bytes | memoryview) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()
