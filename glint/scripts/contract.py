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

``validate(task_input: Mapping, settings: Settings) -> None``
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
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from glint.context import RequestContext
    from glint.gate import ImageGate
    from glint.notifiers.base import Notifier
    from glint.scripts.db_api import ScriptDbApi
    from glint.settings import Settings
    from glint.stores.base import Store
    from glint.stores.multi import MultiStore

CONTRACT_VERSION = 1
SUPPORTED_CONTRACT_VERSIONS = frozenset({1})

JsonObject = dict[str, Any]


class ProgressReporter(Protocol):
    def __call__(self, done: int, total: int | None = None, message: str | None = None) -> None:
        """Record progress: ``done`` units (bytes for data copies) of ``total``.

        ``message`` replaces the default text (``"Copied N MiB"`` style) shown in the task's
        ``message`` while it runs. Cheap to call often: writes are rate-limited.
        """


@dataclasses.dataclass(frozen=True)
class ScriptContext:
    """Everything a script gets from glint. Frozen: a script cannot swap what it was lent."""

    task_id: str
    task_type: str
    task_input: Mapping[str, Any]
    request_context: RequestContext
    db_api: ScriptDbApi
    store_api: Store
    notifier_api: Notifier
    settings: Settings
    report_progress: ProgressReporter
    should_cancel: Callable[[], bool]
    logger: logging.Logger
    # The safety gate (glint.gate): pass image bytes through image_gate.stream before trusting,
    # storing or sending them, and convert only with image_gate.convert.
    image_gate: ImageGate
    attempt: int = 1  # 1 for the first run; more when re-run after a lost worker or a retry

    @property
    def stores(self) -> MultiStore:
        """Every store by id (``backend(id)``, ``ids``, ``default``); one store: just it."""
        from glint.stores import multi

        return multi.of(self.store_api)

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
        from glint import errors

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
