"""Several stores by id: Glance's multi-store (``enabled_backends``).

A :class:`MultiStore` is a :class:`~glint.stores.base.Store` too: used as one, it is the
default backend, so code that knows of one store (the scripts, the reaper's sweep) keeps
working. Code that knows of several asks for a backend by id. :func:`of` gives the same view
of a single store (``multi`` false), so callers need not tell the cases apart.
"""

from __future__ import annotations

import hashlib
import pathlib
from collections.abc import Callable, Iterable, Iterator, Mapping

from glint import datapath, errors, plugins
from glint.settings import Settings
from glint.stores.base import Store, StoreClass, StoreWriter


class MultiStore:
    """The backends by id, in the order configured; as a Store, the default one."""

    def __init__(self, backends: Mapping[str, Store], default: str, multi: bool = True,
                 types: Mapping[str, str] | None = None) -> None:
        if default not in backends:
            raise errors.ConfigurationError(f"default store {default!r} is not a backend")
        self.backends = dict(backends)
        self.default = default
        self.multi = multi
        self.types = dict(types or {i: s.name for i, s in backends.items()})
        self.name = backends[default].name

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(self.backends)

    def backend(self, store_id: str | None) -> Store:
        """The store ``store_id`` names (None: the default); LookupError when unknown."""
        try:
            return self.backends[self.default if store_id is None else store_id]
        except KeyError:
            raise LookupError(store_id) from None

    def resolve(self, store_id: str | None) -> str:
        """A recorded store id; None (rows written without multi-store) is the default."""
        return self.default if store_id is None else store_id

    # -- as a Store: the default backend -------------------------------------------------

    def writer(self, image_id: str) -> StoreWriter:
        return self.backend(None).writer(image_id)

    def read(self, location: str, offset: int = 0, length: int | None = None,
             chunk_size: int = 1024 * 1024) -> Iterator[bytes]:
        return self.backend(None).read(location, offset, length, chunk_size)

    def size(self, location: str) -> int:
        return self.backend(None).size(location)

    def delete(self, location: str) -> None:
        self.backend(None).delete(location)

    def local_path(self, location: str) -> pathlib.Path | None:
        return self.backend(None).local_path(location)

    def locations(self) -> Iterator[str]:
        return self.backend(None).locations()

    def copy(self, location: str, image_id: str) -> str:
        """Copy within the default backend (``CopyingStore``), streaming if it cannot."""
        return copy_between(self.backend(None), location, self.backend(None), image_id)

    def remove_temporary_files(self, older_than: float | None = None) -> int:
        """Every backend's unfinished writes (those of backends that have any)."""
        return sum(store.remove_temporary_files(older_than=older_than)
                   for store in self.backends.values())

    @property
    def shared(self) -> bool:
        """Whether any backend is shared with other nodes."""
        return any(store.shared for store in self.backends.values())


def of(store: Store) -> MultiStore:
    """``store`` as backends: itself when it is a MultiStore, else its only backend."""
    if isinstance(store, MultiStore):
        return store
    return MultiStore({store.name: store}, default=store.name, multi=False)


def from_settings(settings: Settings) -> MultiStore:
    """The ``enabled_backends`` of ``settings``, each a ``glint.stores`` plugin."""
    backends = {store_id: open_store(settings.for_backend(store_id), kind,
                                     settings.effective_backend_path(store_id))
                for store_id, kind in settings.enabled_backends.items()}
    default = settings.effective_default_backend
    assert default is not None, "from_settings needs enabled_backends"
    return MultiStore(backends, default=default, types=settings.enabled_backends)


def open_store(settings: Settings, kind: str, path: pathlib.Path) -> Store:
    """The ``glint.stores`` plugin ``kind``, built from its settings.

    Every plugin class builds itself with ``from_settings(settings, path)``
    (:class:`glint.stores.base.StoreClass`); ``path`` is its directory, if it keeps one.
    """
    plugin: StoreClass = plugins.load("glint.stores", kind)
    return plugin.from_settings(settings, path)


def copy_between(source: Store, location: str, target: Store, image_id: str,
                 checksum: str | None = None,
                 should_cancel: Callable[[], bool] | None = None,
                 check: Callable[[Iterable[bytes]], Iterable[bytes]] = lambda chunks: chunks,
                 meter: Callable[[int], None] | None = None) -> str:
    """Copy ``location``'s bytes from ``source`` into ``target`` for ``image_id``; return the
    new location.

    Within one store that copies itself it does (a reflink where the filesystem can), and the
    copy is read back to check it. Between stores the bytes stream through once, hashed on the
    way, and the copy becomes visible only if their md5 matches ``checksum`` (when given).
    StoreError on a mismatch or a missing source. The bytes read pass through ``check``
    (the safety gate's ``stream``), whose error at their end keeps the copy from being kept.
    """
    own_copy = getattr(target, "copy", None)
    if source is target and own_copy is not None and not isinstance(target, MultiStore):
        new_location: str = own_copy(location, image_id)
        try:
            copied = md5_of(target, new_location, check)
        except BaseException:
            target.delete(new_location)
            raise
        if checksum is not None and copied != checksum:
            target.delete(new_location)
            raise _mismatch(image_id, checksum)
        return new_location
    size = source.size(location)
    with target.writer(image_id) as writer:
        digest = datapath.copy(check(source.read(location)), writer, size_cap=max(size, 1),
                               hash_algo="md5", expected_size=size, should_cancel=should_cancel,
                               meter=meter)
        if checksum is not None and digest.checksum != checksum:
            raise _mismatch(image_id, checksum)
        return writer.commit()


def md5_of(store: Store, location: str,
           check: Callable[[Iterable[bytes]], Iterable[bytes]] = lambda chunks: chunks) -> str:
    """The md5 of the bytes at ``location`` (read through ``check``)."""
    digest = hashlib.md5(usedforsecurity=False)
    for chunk in check(store.read(location)):
        digest.update(chunk)
    return digest.hexdigest()


def _mismatch(image_id: str, checksum: str) -> errors.StoreError:
    return errors.StoreError(f"the copy of image {image_id}'s data does not match its "
                             f"checksum {checksum}; the copy was removed")
