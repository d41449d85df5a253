"""An in-memory store for tests and demos."""

from __future__ import annotations

import pathlib
import threading
from collections.abc import Iterator

from glint import errors
from glint.settings import Settings
from glint.stores import base


class MemoryWriter(base.WriterBase):
    def __init__(self, store: MemoryStore, key: str) -> None:
        self._store = store
        self._key = key
        self._parts: list[bytes] | None = []

    def write(self, data: bytes | memoryview) -> None:
        assert self._parts is not None, "write after commit/abort"
        self._parts.append(bytes(data))

    def commit(self) -> str:
        assert self._parts is not None, "commit after commit/abort"
        with self._store.lock:
            self._store.blobs[self._key] = b"".join(self._parts)
        self._parts = None
        self._committed = True
        return self._key

    def abort(self) -> None:
        self._parts = None


class MemoryStore(base.StoreBase):
    """Image bytes in a dict; ``blobs`` is there for tests to look at."""

    name = "memory"

    def __init__(self, path: pathlib.Path | None = None) -> None:
        self.blobs: dict[str, bytes] = {}
        self.lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings, path: pathlib.Path) -> MemoryStore:
        del settings
        return cls(path)

    def writer(self, image_id: str) -> MemoryWriter:
        return MemoryWriter(self, image_id)

    def read(self, location: str, offset: int = 0, length: int | None = None,
             chunk_size: int = 1024 * 1024) -> Iterator[bytes]:
        blob = self._get(location)
        end = len(blob) if length is None else min(len(blob), offset + length)
        return (blob[i:min(i + chunk_size, end)] for i in range(offset, end, chunk_size))

    def size(self, location: str) -> int:
        return len(self._get(location))

    def delete(self, location: str) -> None:
        with self.lock:
            self.blobs.pop(location, None)

    def copy(self, location: str, image_id: str) -> str:
        """Copy ``location``'s bytes for ``image_id`` (``CopyingStore``)."""
        with self.lock:
            if location not in self.blobs:
                raise errors.StoreError(f"image data {location!r} is missing from the store")
            self.blobs[image_id] = self.blobs[location]
        return image_id

    def local_path(self, location: str) -> pathlib.Path | None:
        return None

    def locations(self) -> Iterator[str]:
        with self.lock:
            return iter(list(self.blobs))

    def _get(self, location: str) -> bytes:
        with self.lock:
            try:
                return self.blobs[location]
            except KeyError:
                raise errors.StoreError(f"image data {location!r} is missing from the store") from None
