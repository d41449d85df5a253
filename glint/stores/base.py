"""The store contract."""

from __future__ import annotations

import pathlib
from collections.abc import Iterator
from types import TracebackType
from typing import TYPE_CHECKING, Protocol, Self, runtime_checkable

if TYPE_CHECKING:
    from glint.settings import Settings


class StoreWriter(Protocol):
    """Receives one image's bytes. Nothing is visible under the final key until ``commit``."""

    def write(self, data: bytes | memoryview) -> None:
        """Take ``data``; a view may be of a buffer refilled once this returns (glint.buffers):
        copy whatever is kept of it (``bytes(view)``)."""
        ...

    def commit(self) -> str:
        """Make the bytes durable and visible; return the location to record on the image."""
        ...

    def abort(self) -> None:
        """Drop everything written so far. Safe to call more than once, and after commit fails."""
        ...

    def __enter__(self) -> Self: ...

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None: ...


class Store(Protocol):
    """Where image bytes live. :class:`StoreBase` gives the capabilities' defaults."""

    name: str

    @property
    def shared(self) -> bool:
        """True for a store other nodes write to (an object store): only the reaper's sweep,
        by age, removes its unfinished writes; False: a process removes its own at start-up."""
        ...

    def writer(self, image_id: str) -> StoreWriter:
        """A writer for ``image_id``'s data; an aborted or unfinished writer leaves nothing."""
        ...

    def read(self, location: str, offset: int = 0, length: int | None = None,
             chunk_size: int = 1024 * 1024) -> Iterator[bytes]:
        """Stream bytes of ``location`` from ``offset`` (``length`` bytes, or to the end)."""
        ...

    def size(self, location: str) -> int:
        """The stored size of ``location`` (raises StoreError when it is missing)."""
        ...

    def delete(self, location: str) -> None:
        """Remove ``location``; a missing one is not an error."""
        ...

    def local_path(self, location: str) -> pathlib.Path | None:
        """A filesystem path for zero-copy sends, or None when the store has none."""
        ...

    def locations(self) -> Iterator[str]:
        """Every location held (used to find orphans)."""
        ...

    def remove_temporary_files(self, older_than: float | None = None) -> int:
        """Remove unfinished writes (those older than ``older_than`` seconds, or all); return
        how many went. 0 for a store whose writes leave nothing behind."""
        ...


class StoreBase:
    """The defaults of a store's capabilities: not shared, no unfinished writes to remove."""

    shared = False

    def remove_temporary_files(self, older_than: float | None = None) -> int:
        return 0

    def after_fork(self) -> None:
        """In a forked child: drop what is the parent's (connections, sessions). A store that
        keeps none has nothing to do."""


class StoreClass(Protocol):
    """A ``glint.stores`` plugin: the class, built with its one factory."""

    def from_settings(self, settings: Settings, path: pathlib.Path) -> Store:
        """The store ``settings`` describe; ``path`` is its directory (a store keeping files
        on this host's disk uses it, an object store has its own settings)."""
        ...


@runtime_checkable
class CopyingStore(Protocol):
    """A store that can copy stored bytes itself, cheaper than reading and writing them.

    Optional: callers check ``isinstance(store, CopyingStore)`` and stream the bytes through a
    writer otherwise.
    """

    def copy(self, location: str, image_id: str) -> str:
        """Copy the bytes at ``location`` to a new location for ``image_id``; return it.

        Nothing is visible under the new location unless the whole copy succeeded.
        """
        ...


class WriterBase:
    """Context-manager behaviour shared by writers: abort unless committed."""

    _committed = False

    def abort(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if not self._committed:
            self.abort()
