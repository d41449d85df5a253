"""The executor contract: a task id in, nothing else.

An executor is built with the function that runs a task (the runner, ``run(task_id)``) and
decides where and when to call it. Every executor class is built the one way,
``cls.from_settings(run, settings, threads=N)`` (:class:`ExecutorClass`). Everything else
about the task is in the database, so a remote executor only has to carry the id.
``remote`` is True for executors whose tasks run in other processes: their tasks are
recovered by the reaper, not by the start-up recovery of one process.
:class:`ExecutorBase` gives the capabilities' defaults (in-process; a delayed submit waits on
a timer of this process).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from glint.settings import Settings

from glint import errors

LOG = logging.getLogger(__name__)

# Runs a task to its end; may return a line saying how it went, for the executor's own log.
RunTask = Callable[[str], "str | None"]


class Executor(Protocol):
    # True when its tasks run in other processes: the reaper recovers them, and republishes
    # pending ones whose message may be lost; False: the start-up recovery of this process.
    remote: bool

    def submit(self, task_id: str, task_type: str = "") -> None:
        """Arrange for the task to run. Must not block on the task's work.

        ``task_type`` only chooses where it runs (a queue); raise ServiceUnavailable when
        the task cannot be handed over.
        """
        ...

    def submit_later(self, task_id: str, task_type: str, delay: float) -> None:
        """Hand the task over in ``delay`` seconds (a retry after its backoff), as the broker's
        delayed delivery does for ``celery``. Until then no slot waits for it."""
        ...

    def shutdown(self, wait: bool = True, timeout: float | None = None) -> None:
        """Stop taking tasks; with ``wait``, let running ones finish (up to ``timeout`` seconds)."""
        ...


class ExecutorBase:
    """The defaults of an executor's capabilities: its tasks run in this process, and a
    delayed submit waits on a timer of this process, then calls ``submit``."""

    remote = False

    def submit(self, task_id: str, task_type: str = "") -> None:  # pragma: no cover
        raise NotImplementedError

    def submit_later(self, task_id: str, task_type: str, delay: float) -> None:
        timer = threading.Timer(max(0.0, delay), self._submit_quietly, (task_id, task_type))
        timer.daemon = True  # a retry lost at exit stays pending; start-up or the reaper has it
        timer.name = f"glint-retry-{task_id[:8]}"
        timer.start()

    def _submit_quietly(self, task_id: str, task_type: str) -> None:
        try:
            self.submit(task_id, task_type)
        except errors.ServiceUnavailable as exc:  # still pending: the reaper re-publishes it
            LOG.warning("could not submit the retry of task %s: %s", task_id, exc.message)


class ExecutorClass(Protocol):
    """A ``glint.executors`` plugin: the class, built with its one factory."""

    def from_settings(self, run: RunTask, settings: Settings, threads: int = 1) -> Executor: ...
