"""The script contract, version 1.

A script package registers an entry point in the ``glint.task_scripts`` namespace; the entry
point's name is the task type and its target is a module (or any object) that has:

``main(ctx: ScriptContext) -> dict``
    Required. Does the task's work and returns the task's ``result`` (a JSON object). Raising any
    exception fails the task; the exception's text becomes the task's ``message``. Raise
    :class:`glint.errors.ScriptError` for failures the user should read as they are, and
    :class:`glint.errors.TransientError` for failures worth another try (the runner re-runs
    the script with backoff, up to the ``task_retry_limit`` setting). Check
    ``ctx.should_cancel()`` between steps: it turns true when the task is cancelled, when its
    lease was lost, or when glint is stopping; then stop, clean up and raise.

``INPUT_SCHEMA: dict``
    Optional. A JSON schema (draft 2020-12) for the task's ``input``, checked when the task is
    created: a task whose input does not match is refused with 400 and never runs.

``validate(task_input: Mapping, settings: ScriptSettings) -> None``
    Optional. Further request-time checks (raise :class:`glint.errors.BadRequest`).

``cleanup(ctx: ScriptContext) -> None``
    Optional. Removes what an earlier, unfinished run of the same task left behind (an image
    record, half-written bytes). The runner calls it before re-running a task (``ctx.attempt``
    > 1, or a retry after a :class:`glint.errors.TransientError`) and after a cancelled run.
    It must be safe to call when there is nothing to remove. Scripts are re-run when a worker
    was lost, so ``main`` must be safe to repeat once ``cleanup`` has run.

``CONTRACT_VERSION: int``
    Optional, default 1. glint refuses to load a script written for a contract it does not serve.

``DESCRIPTION: str``
    Optional one-line description shown by ``glint scripts``.

Image bytes: ``ctx.store_api`` is the default store, where new data goes unless a script names
another. With several stores (``enabled_backends``) an image's bytes may be in any of them:
read them with ``ctx.open_image(image_id, ...)``, which finds a readable copy wherever it is,
and write to a store by id with ``ctx.stores.backend(store_id).writer(...)``, recording it with
``ImageData(store=store_id, ...)``.

glint validates every script when it starts; a script that fails is logged and not served.

This module is the whole contract: it imports the standard library and :mod:`glint.errors`
only, and declares what glint lends a script as Protocols. The objects behind them (the
database API, the stores, the safety gate, the notifier) live elsewhere in glint and are
built for each run by the runner (:mod:`glint.tasks.context_factory`). The built-in scripts
reach glint's state through this contract only, as a third-party script does.
"""

from __future__ import annotations

import dataclasses
import logging
import pathlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from types import TracebackType
from typing import Any, Protocol, Self, runtime_checkable

from glint import errors

CONTRACT_VERSION = 1
SUPPORTED_CONTRACT_VERSIONS = frozenset({1})

JsonObject = dict[str, Any]


class ImageStatus:
    """The image statuses a script meets (Glance's names)."""

    QUEUED = "queued"
    SAVING = "saving"
    UPLOADING = "uploading"
    IMPORTING = "importing"
    ACTIVE = "active"


class TaskStatus:
    """A task's statuses, as ``db_api.get_task()["status"]`` shows them."""

    PENDING = "pending"
    PROCESSING = "processing"
    SUCCESS = "success"
    FAILURE = "failure"


@dataclasses.dataclass(frozen=True)
class ScriptSettings:
    """The settings a script reads: glint's settings of the same names, nothing wider.

    No database or broker URL, no Keystone or store credentials: a script that needs another
    value takes it from its own configuration.
    """

    disk_formats: tuple[str, ...] = ()
    container_formats: tuple[str, ...] = ()
    hashing_algorithm: str = "sha512"
    image_size_cap: int = 1 << 40
    image_property_quota: int = 128
    image_tag_quota: int = 128
    enabled_import_methods: tuple[str, ...] = ()
    glance_download_properties: tuple[str, ...] = ()
    import_allowed_schemes: tuple[str, ...] = ("http", "https")
    import_allowed_hosts: tuple[str, ...] = ()
    import_disallowed_hosts: tuple[str, ...] = ()
    import_allowed_ports: tuple[int, ...] = (80, 443)
    import_timeout: float = 60.0
    import_max_redirects: int = 5
    import_decompress: bool = False
    effective_decompressed_size_cap: int = 1 << 40
    import_conversion_format: str | None = None
    effective_work_dir: pathlib.Path = pathlib.Path("work")
    export_allowed_dirs: tuple[pathlib.Path, ...] = ()

    @classmethod
    def from_settings(cls, settings: Any) -> ScriptSettings:
        """The fields of this class, read from glint's settings (or any object having them)."""
        return cls(**{field.name: getattr(settings, field.name)
                      for field in dataclasses.fields(cls)})


@dataclasses.dataclass(frozen=True)
class Credentials:
    """The caller's Keystone token and service catalog (Keystone mode, ``glance-download``).

    Handed from the request that created the task to its script in memory only, never stored.
    """

    token: str = dataclasses.field(repr=False)
    service_catalog: tuple[Mapping[str, Any], ...] = dataclasses.field(repr=False)


@dataclasses.dataclass(frozen=True)
class ImageData:
    """What a completed write produced (``db_api.set_image_data``)."""

    location: str
    size: int
    checksum: str
    os_hash_algo: str
    os_hash_value: str
    disk_format: str | None = None  # set when the write changed it (a conversion)
    virtual_size: int | None = None  # when known (the format inspector's)
    store: str | None = None  # the store written to (multi-store); None: the default
    # Further (store, location) copies written before activation (an import to several stores).
    copies: tuple[tuple[str, str], ...] = ()


class ProgressReporter(Protocol):
    def __call__(self, done: int, total: int | None = None, message: str | None = None) -> None:
        """Record progress: ``done`` units (bytes for data copies) of ``total``.

        ``message`` replaces the default text (``"Copied N MiB"`` style) shown in the task's
        ``message`` while it runs. Cheap to call often: writes are rate-limited.
        """


class RequestContext(Protocol):
    """Who created the task."""

    @property
    def user_id(self) -> str | None: ...

    @property
    def project_id(self) -> str | None: ...

    @property
    def roles(self) -> tuple[str, ...]: ...

    @property
    def request_id(self) -> str: ...

    @property
    def is_admin(self) -> bool: ...


class StoreWriter(Protocol):
    """An unfinished write: nothing is visible until ``commit`` returns its location."""

    def write(self, data: bytes | memoryview) -> None:
        """Take ``data``; a view may be of a buffer refilled once this returns (glint.buffers):
        copy whatever is kept of it (``bytes(view)``)."""
        ...

    def commit(self) -> str: ...

    def abort(self) -> None: ...

    def __enter__(self) -> Self: ...

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None: ...


class Store(Protocol):
    """A place image bytes are kept."""

    def writer(self, image_id: str) -> StoreWriter: ...

    def read(self, location: str, offset: int = 0, length: int | None = None,
             chunk_size: int = 1024 * 1024) -> Iterator[bytes]: ...

    def size(self, location: str) -> int: ...

    def delete(self, location: str) -> None: ...

    def local_path(self, location: str) -> pathlib.Path | None: ...


@runtime_checkable
class CopyingStore(Protocol):
    """A store that copies stored bytes itself (``isinstance(store, CopyingStore)``)."""

    def copy(self, location: str, image_id: str) -> str: ...


class Stores(Protocol):
    """Every store by id (``enabled_backends``); with one store, just it (``multi`` false)."""

    @property
    def multi(self) -> bool: ...

    @property
    def default(self) -> str: ...

    @property
    def ids(self) -> tuple[str, ...]: ...

    @property
    def backends(self) -> Mapping[str, Store]: ...

    @property
    def staging(self) -> Store:
        """Where ``glance-direct`` data waits for its import, under the image's id."""
        ...

    def backend(self, store_id: str | None) -> Store:
        """The store ``store_id`` names (None: the default); LookupError when unknown."""
        ...

    def resolve(self, store_id: str | None) -> str:
        """A recorded store id; None (rows written without multi-store) is the default."""
        ...

    def copy(self, source: str | None, location: str, target: str | None, image_id: str,
             checksum: str | None = None, should_cancel: Callable[[], bool] | None = None,
             check: Callable[[Iterable[bytes]], Iterable[bytes]] | None = None) -> str:
        """Copy ``location``'s bytes from store ``source`` into store ``target`` for
        ``image_id``, checked against their md5 ``checksum``; the new location."""
        ...

    def meter(self, store_id: str | None) -> Callable[[int], None]:
        """Counts bytes imported into the store (``glint_image_data_bytes``)."""
        ...


class Verdict(Protocol):
    """The safety gate's word on data it let through."""

    @property
    def disk_format(self) -> str | None: ...

    @property
    def virtual_size(self) -> int | None: ...


class CheckedStream(Protocol):
    """Chunks passing the gate: iterate it; ``verdict`` is set once they passed."""

    def __iter__(self) -> Iterator[bytes]: ...

    @property
    def verdict(self) -> Verdict | None: ...


class ImageGate(Protocol):
    """The safety gate (:mod:`glint.gate`, docs/security.md)."""

    def stream(self, chunks: Iterable[bytes], disk_format: str | None,
               container_format: str | None = None, *,
               what: str = "disk_format") -> CheckedStream: ...

    def check_file(self, path: pathlib.Path, disk_format: str, *,
                   what: str = "disk_format") -> Verdict: ...

    def convert(self, source: pathlib.Path, source_format: str, target_format: str,
                target: pathlib.Path, *, container_format: str | None = None,
                should_cancel: Callable[[], bool] = lambda: False) -> Verdict: ...


class Notifier(Protocol):
    def notify(self, event: Any) -> None:
        """Send ``event`` (a ``glint.notifiers.base.Event``)."""


class ImageApi(Protocol):
    """Images and the task's own record, acting as the task's creator; writes fenced by the
    run's lease (:class:`glint.errors.LeaseLost` once another runner holds the task)."""

    def get_task(self) -> dict[str, Any]: ...

    def create_image(self, values: Mapping[str, Any],
                     status: str = ImageStatus.QUEUED) -> dict[str, Any]: ...

    def link_image(self, image_id: str) -> None: ...

    def task_image_id(self) -> str | None: ...

    def get_image(self, image_id: str) -> dict[str, Any]: ...

    def get_active_image(self, image_id: str, action: str,
                         done: str) -> tuple[dict[str, Any], str]: ...

    def get_image_location(self, image_id: str) -> str | None: ...

    def set_image_status(self, image_id: str, status: str, expected: str | None = None,
                         **fields: Any) -> dict[str, Any]: ...

    def set_image_attributes(self, image_id: str, fields: Mapping[str, Any],
                             properties: Mapping[str, str | None]) -> dict[str, Any]: ...

    def set_image_data(self, image_id: str, data: ImageData,
                       from_status: str) -> dict[str, Any]: ...

    def discard_image(self, image_id: str) -> None: ...

    def get_image_locations(self, image_id: str) -> list[tuple[str | None, str]]: ...

    def add_image_location(self, image_id: str, store: str, location: str) -> None: ...

    def remove_image_location(self, image_id: str, store: str) -> None: ...

    def import_progress(self, image_id: str, *, start: list[str] | None = None,
                        done: str | None = None, failed: list[str] | None = None) -> None: ...

    def importing_stores(self, image_id: str) -> list[str]: ...

    def release_import_lock(self, image_id: str) -> bool: ...


class ImageCache(Protocol):
    """This node's image cache (``glint.cache``), lent when it is on (``image_cache_enabled``)."""

    def prefetch(self, ctx: ScriptContext, image_id: str) -> bool:
        """Fill the cache with the active image if it is still queued for prefetch, reading it
        through ``ctx`` (``open_image``, ``report_progress``, ``should_cancel``) and verifying
        it against its checksum and multihash; True when the image is cached afterwards."""
        ...


@dataclasses.dataclass(frozen=True)
class ScriptContext:
    """Everything a script gets from glint. Frozen: a script cannot swap what it was lent."""

    task_id: str
    task_type: str
    task_input: Mapping[str, Any]
    request_context: RequestContext
    db_api: ImageApi
    store_api: Store  # the default store
    notifier_api: Notifier
    settings: ScriptSettings
    report_progress: ProgressReporter
    should_cancel: Callable[[], bool]
    logger: logging.Logger
    # The safety gate (glint.gate): pass image bytes through image_gate.stream before trusting,
    # storing or sending them, and convert only with image_gate.convert.
    image_gate: ImageGate
    stores: Stores  # every store by id (``backend(id)``, ``ids``, ``default``)
    attempt: int = 1  # 1 for the first run; more when re-run after a lost worker or a retry
    # The caller's, in Keystone mode, for work done as the caller; None when there are none
    # (or no longer: glint restarted, or they expired).
    credentials: Credentials | None = None
    # This node's image cache; None when the cache is off.
    image_cache: ImageCache | None = None

    def image_copies(self, image_id: str) -> list[ImageCopy]:
        """Every recorded copy of the image's bytes, the default store's first.

        NotFound when the task's creator may not see the image.
        """
        stores = self.stores
        copies = [ImageCopy(stores.resolve(store_id), stores.backend(store_id), location)
                  for store_id, location in self.db_api.get_image_locations(image_id)
                  if stores.resolve(store_id) in stores.backends]
        return sorted(copies, key=lambda copy: copy.store_id != stores.default)

    def open_image(self, image_id: str, action: str, done: str) -> tuple[JsonObject, ImageCopy]:
        """The active image and a copy of its bytes that its store still has.

        ScriptError (naming ``action``/``done``, e.g. "clone"/"cloned") unless the image is
        visible and active and some store holds its bytes.
        """
        image, _ = self.db_api.get_active_image(image_id, action, done)
        for copy in self.image_copies(image_id):
            try:
                copy.store.size(copy.location)
            except errors.StoreError as exc:
                self.logger.warning("image %s: no copy in store %s (%s)", image_id,
                                    copy.store_id, exc.message)
                continue
            return image, copy
        raise errors.ScriptError(f"Cannot {action} image {image_id}: its data is missing "
                                 "from every store")


@dataclasses.dataclass(frozen=True)
class ImageCopy:
    """One copy of an image's bytes: the store holding it (and its id), and where in it."""

    store_id: str
    store: Store
    location: str

    def read(self, offset: int = 0, length: int | None = None,
             chunk_size: int = 1024 * 1024) -> Iterator[bytes]:
        """Stream the bytes (``length`` of them from ``offset``, or all)."""
        return self.store.read(self.location, offset, length, chunk_size)


class Script(Protocol):
    """What an entry point in ``glint.task_scripts`` must point at."""

    def main(self, ctx: ScriptContext) -> JsonObject: ...
