"""The filesystem store: one file per image under a directory.

A write goes to a hidden temporary file in the same directory, is fsynced, then renamed into
place (and the directory fsynced), so an image's final name never holds a partial file. A write
that fails raises :func:`glint.errors.store_error`'s reading of the OSError: StoreFull for a
full filesystem, StoreUnwritable for a read-only or forbidden one. The written pages are left
in the page cache, where the next download finds them (:meth:`FilesystemWriter._flush` says
why).
"""

from __future__ import annotations

import contextlib
import errno
import os
import pathlib
import time
import uuid
from collections.abc import Iterator

from glint import errors
from glint.settings import Settings
from glint.stores import base

TMP_PREFIX = ".tmp-"
FLUSH_EVERY = 64 * 1024 * 1024  # bytes written between flushes to disk
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
        self._unflushed = 0

    def write(self, data: bytes | memoryview) -> None:
        assert self._fd is not None, "write after commit/abort"
        view = memoryview(data)
        try:
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
            self._unflushed += len(data)
            if self._unflushed >= FLUSH_EVERY:
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
        """Flush as we go: the disk works while the data still arrives, and commit's fsync has
        little left to do.

        The written pages stay in the page cache (clean once flushed, so the kernel can take
        them back at any time; no process's memory grows). Dropping them (``DONTNEED`` after
        each flush, until 2026-12-08) made the download that often follows an upload or
        import (a server booted from a new image) read a disk that was still busy with the
        write: 160 MiB/s against 607 with the pages kept, the upload's CPU per MiB the same
        within the noise (6.96 and 7.21 ms/MiB), BENCHMARKS.md's 2026-12-08 section.
        """
        assert self._fd is not None
        os.fdatasync(self._fd)
        self._unflushed = 0

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


def _fsync_dir(directory: pathlib.Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
