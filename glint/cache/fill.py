"""One image written into the cache while its bytes pass by (a download, a prefetch).

A fill owns ``incomplete/<image id>`` in the cache directory, created exclusively: a second
download of the same image on this node (any process) finds it and reads from the store
instead of filling a second copy. The chunks are hashed (the image's multihash, and md5 unless
that multihash is collision-resistant) and written by :class:`glint.datapath.Pipeline`'s
stages, off the thread that passes them on (:meth:`Fill.write`), or written by the caller's
own thread (:meth:`Fill.write_through`: a download sent out of the file,
:mod:`glint.api.filling_download`).
Only a fill whose size and hashes match the image's is renamed into place: a collision-resistant
``os_hash_value`` (sha512 by default) proves the bytes by itself, and the md5 beside it would
add 1.4 s of CPU a GiB and no certainty; without one, the md5 ``checksum`` does. Anything else
is removed, and a mismatch is logged. A fill whose file has not grown for
``stall_time`` seconds (a client that stopped reading, a process that died) is abandoned: the
next fill of the image removes it and starts afresh.

The chunks are passed on as soon as they are handed to the write stage: the hashes are taken
by threads that read the file behind the writes (``pread``, from the page cache), at the
lowest CPU priority, so hashing never holds up the download a fill rides on.
:meth:`Fill.commit` waits for them to catch up.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
import os
import pathlib
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, BinaryIO

from glint import datapath, metrics

LOG = logging.getLogger(__name__)
READ_SIZE = 1024 * 1024  # what a hasher reads of the file at a time
# Multihash algorithms whose match proves the bytes without the md5 (no known collisions).
PROVING = frozenset({"sha224", "sha256", "sha384", "sha512", "sha512_224", "sha512_256",
                     "sha3_224", "sha3_256", "sha3_384", "sha3_512", "blake2b", "blake2s"})
NICE = 19


@dataclasses.dataclass(frozen=True)
class Expected:
    """What an image's bytes must be for the cache to hold them (from the image record)."""

    image_id: str
    size: int
    checksum: str
    hash_algo: str | None
    hash_value: str | None

    @classmethod
    def of(cls, image: Any) -> Expected | None:
        """From an image row or its JSON; None when it cannot be verified (no size or md5)."""
        get: Callable[[str], Any] = (image.get if isinstance(image, Mapping)
                                     else lambda name: getattr(image, name, None))
        if get("size") is None or not get("checksum"):
            return None
        return cls(get("id"), get("size"), get("checksum"), get("os_hash_algo"),
                   get("os_hash_value"))


class Fill:
    """Writes the chunks handed to :meth:`wrap` (or :meth:`write`) and hashes the file behind
    the writes, then :meth:`commit` puts a verified copy in place through ``publish``."""

    def __init__(self, expected: Expected, path: pathlib.Path, fd: int,
                 publish: Callable[[Fill, int], bool]) -> None:
        self.expected, self.path, self._fd, self._publish = expected, path, fd, publish
        algo = expected.hash_algo if expected.hash_value else None
        self._multihash = hashlib.new(algo) if algo and algo != "md5" else None
        self._md5 = None if algo in PROVING else hashlib.md5(usedforsecurity=False)
        self._written = _Progress()
        self._hashers: list[_Hasher] = []
        self._pipeline: datapath.Pipeline | None = None  # started by the first chunk
        self._closed = False
        # A fill whose stream never started (its client left before the body) is released
        # when it is collected: its file removed, its descriptor closed.
        self._release = weakref.finalize(self, _release, path, fd)
        self.size = 0
        self.done = False

    def _start(self) -> datapath.Pipeline:
        self._start_hashers()
        self._pipeline = datapath.Pipeline([self._write])
        return self._pipeline

    def _start_hashers(self) -> None:
        if self._hashers:
            return
        self._hashers = [_Hasher(self._fd, h, self._written)
                         for h in (self._md5, self._multihash) if h is not None]
        for hasher in self._hashers:
            hasher.start()

    def wrap(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        """``chunks`` passed on unchanged, filling the cache on the way. A failing fill stops
        filling, never the stream; a stream that ends early abandons the fill."""
        try:
            for chunk in chunks:
                self.write(chunk)
                yield chunk
            self.commit()
        finally:
            self.abort()

    def write(self, chunk: bytes) -> None:
        if self._closed or not chunk:
            return
        try:
            (self._pipeline or self._start()).feed(chunk)
            self.size += len(chunk)
        except Exception as exc:
            self._failed(exc)

    def write_through(self, chunk: bytes) -> bool:
        """Write ``chunk`` to the file on this thread (no write stage): whether it is in the
        file, where :meth:`reader` finds it. False once the fill failed (or was stopped): the
        caller passes the chunk on itself."""
        if self._closed:
            return False
        if self._pipeline is not None:
            raise RuntimeError("write_through after write: one fill, one way of writing")
        try:
            self._start_hashers()
            self._write(chunk)
            self.size += len(chunk)
        except Exception as exc:
            self._failed(exc)
            return False
        return True

    def reader(self) -> BinaryIO:
        """A file of its own on the fill's bytes (unbuffered; read it at explicit offsets):
        it stays readable after the fill is kept or abandoned."""
        return open(os.dup(self._fd), "rb", buffering=0)

    def _failed(self, exc: Exception) -> None:
        LOG.warning("cache fill of image %s failed (%s); the image is served from its store",
                    self.expected.image_id, exc)
        metrics.CACHE_FILLS.labels("failed").inc()
        self.abort()

    def commit(self) -> bool:
        """Verify the bytes and put them in place; whether the image is now cached."""
        if self._closed:
            return False
        try:
            if self._pipeline is not None:
                self._pipeline.finish()
            self._start_hashers()
            self._written.end()
            for hasher in self._hashers:
                hasher.join()
                if hasher.error is not None:
                    raise hasher.error
            os.fsync(self._fd)
        except Exception as exc:
            LOG.warning("cache fill of image %s failed (%s)", self.expected.image_id, exc)
            metrics.CACHE_FILLS.labels("failed").inc()
            self.abort()
            return False
        if not self._matches():
            metrics.CACHE_FILLS.labels("mismatch").inc()
            self.abort()
            return False
        try:
            self.done = self._publish(self, os.fstat(self._fd).st_ino)
        except Exception as exc:  # (the index locked for too long, a full disk...)
            LOG.warning("cache fill of image %s not kept (%s)", self.expected.image_id, exc)
        metrics.CACHE_FILLS.labels("cached" if self.done else "failed").inc()
        self.abort()  # closes the file; the published one is no longer at self.path
        return self.done

    def abort(self) -> None:
        """Stop and remove the unfinished file (idempotent; a published one is no longer at
        ``path``)."""
        if self._closed:
            return
        self._closed = True
        if self._pipeline is not None:
            self._pipeline.stop()
        self._written.end()
        for hasher in self._hashers:
            hasher.stop()
        self._release()

    def _write(self, chunk: bytes) -> None:
        # At explicit offsets: the file offset is shared with the reader()'s (a dup), which
        # asyncio's sendfile moves.
        view, position = memoryview(chunk), self._written.size
        while view:
            done = os.pwrite(self._fd, view, position)
            view, position = view[done:], position + done
        self._written.add(len(chunk))

    def _matches(self) -> bool:
        want = self.expected
        got: list[tuple[str, object]] = [("size", self.size)]
        wanted: list[tuple[str, object]] = [("size", want.size)]
        if self._md5 is not None:
            got.append(("md5", self._md5.hexdigest()))
            wanted.append(("md5", want.checksum))
            if want.hash_algo == "md5" and want.hash_value:
                wanted.append(("md5", want.hash_value))
                got.append(got[-1])
        if self._multihash is not None:
            got.append((self._multihash.name, self._multihash.hexdigest()))
            wanted.append((self._multihash.name, want.hash_value))
        if got == wanted:
            return True
        LOG.error("cache fill of image %s discarded: its bytes (%s) do not match the image's "
                  "(%s)", want.image_id, _pairs(got), _pairs(wanted))
        return False


def _pairs(pairs: list[tuple[str, object]]) -> str:
    return ", ".join(f"{name} {value}" for name, value in pairs)


def claim(path: pathlib.Path, stall_time: float) -> int | None:
    """Create ``path`` for one fill; None while another fill that still makes progress has it."""
    for _attempt in range(2):
        try:
            return os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            if not stalled(path, stall_time):
                return None
            LOG.warning("cache fill %s made no progress for %g s: abandoned", path.name,
                        stall_time)
            metrics.CACHE_FILLS.labels("stalled").inc()
            path.unlink(missing_ok=True)
    return None


def stalled(path: pathlib.Path, stall_time: float) -> bool:
    try:
        return time.time() - path.stat().st_mtime > stall_time
    except FileNotFoundError:
        return True


def _release(path: pathlib.Path, fd: int) -> None:
    _remove_if_ours(path, fd)
    os.close(fd)


def _remove_if_ours(path: pathlib.Path, fd: int) -> None:
    """Remove ``path`` unless another fill has replaced it since (ours was abandoned)."""
    try:
        if path.stat().st_ino == os.fstat(fd).st_ino:
            path.unlink()
    except FileNotFoundError:
        pass


class _Progress:
    """How many bytes the write stage has written, and whether it is done; hashers wait on it."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self.size = 0
        self.ended = False

    def add(self, count: int) -> None:
        with self._changed:
            self.size += count
            self._changed.notify_all()

    def end(self) -> None:
        with self._changed:
            self.ended = True
            self._changed.notify_all()

    def wait_past(self, position: int) -> tuple[int, bool]:
        """Once more than ``position`` bytes are written, or writing ended: (size, ended)."""
        with self._changed:
            self._changed.wait_for(lambda: self.size > position or self.ended)
            return self.size, self.ended


class _Hasher(threading.Thread):
    """Hashes the fill's file as it grows, reading behind the writes."""

    def __init__(self, fd: int, hasher: Any, written: _Progress) -> None:
        super().__init__(name="glint-cache-hash", daemon=True)
        self.fd, self.hasher, self.written = fd, hasher, written
        self.error: BaseException | None = None
        self._stop_now = False

    def run(self) -> None:
        _lower_priority()
        position = 0
        buffer = memoryview(bytearray(READ_SIZE))  # one buffer, read into again and again
        try:
            while not self._stop_now:
                size, ended = self.written.wait_past(position)
                while position < size and not self._stop_now:
                    got = os.preadv(self.fd, [buffer[:min(READ_SIZE, size - position)]],
                                    position)
                    if not got:
                        raise OSError(f"the cache file ended at {position} of {size} bytes")
                    self.hasher.update(buffer[:got])
                    position += got
                if ended and position >= self.written.size:
                    return
        except BaseException as exc:
            self.error = exc

    def stop(self) -> None:
        self._stop_now = True
        self.join()


def _lower_priority() -> None:
    """Run this thread at the lowest CPU priority (Linux: a thread's nice value is its own).
    On a busy node the download and the store get the CPU first; the hashes catch up after the
    last byte is sent, before the fill is kept."""
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), NICE)
