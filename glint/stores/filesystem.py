"""The filesystem store: one file per image under a directory.

A write goes to a hidden temporary file in the same directory, is fsynced, then renamed into
place (and the directory fsynced), so an image's final name never holds a partial file. A write
that fails raises :func:`glint.errors.store_error`'s reading of the OSError: StoreFull for a
full filesystem, StoreUnwritable for a read-only or forbidden one. The disk writes a part of
the file while the next one arrives, and the written pages leave the page cache once they are
on disk (:meth:`FilesystemWriter._flush` says why).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import functools
import os
import pathlib
import time
import uuid
from collections.abc import Callable, Iterator

from glint import errors
from glint.settings import Settings
from glint.stores import base

TMP_PREFIX = ".tmp-"
FLUSH_EVERY = 64 * 1024 * 1024  # bytes written between flushes to disk
# sync_file_range(2)'s flags (linux/fs.h)
_WAIT_BEFORE, _WRITE, _WAIT_AFTER = 1, 2, 4
COPY_CHUNK = 1024 * 1024 * 1024  # bytes asked of copy_file_range per call


class FilesystemWriter(base.WriterBase):
    def __init__(self, directory: pathlib.Path, key: str) -> None:
        self._final = directory / key
        self._tmp = directory / f"{TMP_PREFIX}{key}-{uuid.uuid4().hex}"
        try:
            self._fd: int | None = os.open(self._tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL,
                                           0o640)
        except OSError as exc:
            raise errors.store_error(exc) from exc
        self._key = key
        self._written = 0  # bytes written to the file so far
        self._flushing = 0  # end of the part whose writeback was started last
        self._flushed = 0  # end of the part on disk and out of the page cache

    def write(self, data: bytes | memoryview) -> None:
        assert self._fd is not None, "write after commit/abort"
        view = memoryview(data)
        try:
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
            self._written += len(data)
            if self._written - self._flushing >= FLUSH_EVERY:
                self._flush()
        except OSError as exc:
            raise errors.store_error(exc) from exc

    def copy_from(self, source_fd: int) -> None:
        """Append all of ``source_fd`` from its offset, in the kernel (``copy_file_range``).

        On filesystems that share extents (Btrfs, XFS with reflink, ZFS...) the kernel makes
        this a reflink: no data is copied. Elsewhere it falls back to plain writes.
        """
        assert self._fd is not None, "write after commit/abort"
        copy_file_range = getattr(os, "copy_file_range", None)
        try:
            while copy_file_range is not None:
                if copy_file_range(source_fd, self._fd, COPY_CHUNK) == 0:
                    return
        except OSError as exc:  # EXDEV on old kernels, ENOSYS, EINVAL on some filesystems
            if exc.errno not in _NO_COPY_FILE_RANGE:
                raise errors.store_error(exc) from exc
        while data := os.read(source_fd, 1024 * 1024):
            self.write(data)

    def _flush(self) -> None:
        """Start the disk on the part written since the last flush, wait for the part before it,
        and drop that part's pages from the page cache.

        The disk writes one part while the next arrives: an ``fdatasync`` here held the copy
        (and with it the hashing) still while the disk wrote, so the CPU and the disk took
        turns (BENCHMARKS.md, "Issue 18: 8 imports at once"). A writer has at most three parts
        not yet on disk (being written, its writeback started, the one waited for). This is
        pacing, not durability: :meth:`commit` fsyncs the file before anything reports success.

        The pages are dropped once on disk because on a virtual machine that hands free memory
        back to its host (virtio-balloon's free page reporting: the bench host) a page cache
        that grows by the image touches memory the host must supply again: 1.7-2.1 ms of CPU
        per MiB in the writing thread against 0.25 with the pages dropped, a third of an
        import's CPU. Dropped pages are reused at once for the next part, still backed.
        Keeping them (2026-12-08 00:58 to this change) served the download right after an
        upload from memory; the bench measures both.
        """
        assert self._fd is not None
        sync_range = _sync_file_range()
        try:
            if sync_range is None:  # not Linux
                raise OSError(errno.ENOSYS, "no sync_file_range")
            sync_range(self._fd, self._flushing, self._written - self._flushing, _WRITE)
        except OSError as exc:
            if exc.errno not in _NO_SYNC_FILE_RANGE:
                raise
            os.fdatasync(self._fd)  # none here (this system, this filesystem): all of it now
            self._flushing = self._written
            self._drop(self._written)
            return
        if self._flushed < self._flushing:
            sync_range(self._fd, self._flushed, self._flushing - self._flushed,
                       _WAIT_BEFORE | _WRITE | _WAIT_AFTER)
            self._drop(self._flushing)
        self._flushing = self._written

    def _drop(self, end: int) -> None:
        """Drop the written pages before ``end`` (clean: on disk) from the page cache."""
        assert self._fd is not None
        if hasattr(os, "posix_fadvise"):
            with contextlib.suppress(OSError):
                os.posix_fadvise(self._fd, self._flushed, end - self._flushed,
                                 os.POSIX_FADV_DONTNEED)
        self._flushed = end

    def commit(self) -> str:
        assert self._fd is not None, "commit after commit/abort"
        try:
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = None
            os.replace(self._tmp, self._final)
            _fsync_dir(self._final.parent)
        except OSError as exc:
            self.abort()
            raise errors.store_error(exc) from exc
        self._committed = True
        return self._key

    def abort(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self._tmp.unlink(missing_ok=True)


class FilesystemStore(base.StoreBase):
    """Image bytes as files under ``path``."""

    name = "filesystem"

    def __init__(self, path: pathlib.Path) -> None:
        self.path = pathlib.Path(path).resolve()
        self.path.mkdir(parents=True, exist_ok=True)

    @classmethod
    def from_settings(cls, settings: Settings, path: pathlib.Path) -> FilesystemStore:
        del settings
        return cls(path)

    def writer(self, image_id: str) -> FilesystemWriter:
        return FilesystemWriter(self.path, _key(image_id))

    def read(self, location: str, offset: int = 0, length: int | None = None,
             chunk_size: int = 1024 * 1024) -> Iterator[bytes]:
        path = self._path(location)
        try:
            handle = open(path, "rb", buffering=0)  # noqa: SIM115 - closed by the generator
        except FileNotFoundError:
            raise errors.StoreError(f"image data {location!r} is missing from the store") from None
        return _chunks(handle, offset, length, chunk_size)

    def size(self, location: str) -> int:
        try:
            return self._path(location).stat().st_size
        except FileNotFoundError:
            raise errors.StoreError(f"image data {location!r} is missing from the store") from None

    def delete(self, location: str) -> None:
        """Remove the bytes, and any unfinished write for the same key (a killed run's).

        A writer still running for that key then fails at commit: nothing of it is kept.
        """
        path = self._path(location)
        path.unlink(missing_ok=True)
        for leftover in self.path.glob(f"{TMP_PREFIX}{path.name}-*"):
            leftover.unlink(missing_ok=True)

    def copy(self, location: str, image_id: str) -> str:
        """Copy ``location``'s file for ``image_id`` (a reflink where the filesystem can)."""
        try:
            source = os.open(self._path(location), os.O_RDONLY)
        except FileNotFoundError:
            raise errors.StoreError(f"image data {location!r} is missing from the store") from None
        try:
            with self.writer(image_id) as writer:
                writer.copy_from(source)
                return writer.commit()
        finally:
            os.close(source)

    def local_path(self, location: str) -> pathlib.Path | None:
        return self._path(location)

    def locations(self) -> Iterator[str]:
        for entry in self.path.iterdir():
            if entry.is_file() and not entry.name.startswith(TMP_PREFIX):
                yield entry.name

    def remove_temporary_files(self, older_than: float | None = None) -> int:
        """Delete writes left unfinished by a crashed process; return how many.

        With ``older_than`` (seconds), only those not written to for that long: the periodic
        sweep of a store that other processes, on other nodes too, are writing to. A live
        writer touches its file with every write; one stalled for longer has outlived its
        task's time limit. Any number of sweeps may run at once: a file another one removed
        first is skipped.
        """
        cutoff = None if older_than is None else time.time() - older_than
        count = 0
        for entry in self.path.glob(f"{TMP_PREFIX}*"):
            try:
                if cutoff is not None and entry.stat().st_mtime >= cutoff:
                    continue
                entry.unlink()
            except FileNotFoundError:  # committed, aborted or swept meanwhile
                continue
            count += 1
        return count

    def _path(self, location: str) -> pathlib.Path:
        return self.path / _key(location)


_NO_COPY_FILE_RANGE = frozenset({errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP,
                                 errno.EPERM})


_NO_SYNC_FILE_RANGE = frozenset({errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.ESPIPE})


def _key(name: str) -> str:
    # Locations are glint-made keys; refuse anything that could leave the directory.
    if not name or "/" in name or "\\" in name or name.startswith(".") or "\x00" in name:
        raise errors.StoreError(f"invalid store key {name!r}")
    return name


def _chunks(handle: object, offset: int, length: int | None, chunk_size: int) -> Iterator[bytes]:
    import io

    assert isinstance(handle, io.RawIOBase)
    with handle:
        if hasattr(os, "posix_fadvise"):  # read ahead further: this is a read to the end
            with contextlib.suppress(OSError):
                os.posix_fadvise(handle.fileno(), 0, 0, os.POSIX_FADV_SEQUENTIAL)
        handle.seek(offset)
        remaining = length
        while remaining is None or remaining > 0:
            want = chunk_size if remaining is None else min(chunk_size, remaining)
            data = handle.read(want)
            if not data:
                return
            if remaining is not None:
                remaining -= len(data)
            yield data


@functools.cache
def _sync_file_range() -> Callable[[int, int, int, int], None] | None:
    """libc's ``sync_file_range(2)`` raising OSError, or None where there is none (not Linux)."""
    name = ctypes.util.find_library("c")
    call = getattr(ctypes.CDLL(name, use_errno=True), "sync_file_range", None) if name else None
    if call is None:
        return None
    call.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    call.restype = ctypes.c_int

    def sync_range(fd: int, offset: int, count: int, flags: int) -> None:
        if call(fd, offset, count, flags) != 0:
            code = ctypes.get_errno()
            raise OSError(code, os.strerror(code))

    return sync_range


def _fsync_dir(directory: pathlib.Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
