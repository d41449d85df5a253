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

glint validates every script when it starts; a script that fails is logged and not served.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from glint.context import RequestContext
    from glint.gate import ImageGate
    from glint.notifiers.base import Notifier
    from glint.scripts.db_api import ScriptDbApi
    from glint.settings import Settings
    from glint.stores.base import Store

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


class Script(Protocol):
    """What an entry point in ``glint.task_scripts`` must point at."""

    def main(self, ctx: ScriptContext) -> JsonObject: ...
