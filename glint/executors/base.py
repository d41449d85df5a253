"""The executor contract: a task id in, nothing else.

An executor is built with the function that runs a task (the runner, ``run(task_id)``) and
decides where and when to call it. Every executor class is built the one way,
``cls.from_settings(run, settings, threads=N)`` (:class:`ExecutorClass`). Everything else
about the task is in the database, so a remote executor only has to carry the id.
``remote`` is True for executors whose tasks run in other processes: their tasks are
recovered by the reaper, not by the start-up recovery of one process.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from glint.settings import Settings

RunTask = Callable[[str], None]


class Executor(Protocol):
    def submit(self, task_id: str, task_type: str = "") -> None:
        """Arrange for the task to run. Must not block on the task's work.

        ``task_type`` only chooses where it runs (a queue); raise ServiceUnavailable when
        the task cannot be handed over.
        """
        ...

    def shutdown(self, wait: bool = True, timeout: float | None = None) -> None:
        """Stop taking tasks; with ``wait``, let running ones finish (up to ``timeout`` seconds)."""
        ...

# Optional: ``submit_later(task_id, task_type, delay)`` hands the task over in ``delay`` seconds
# (a retry after its backoff), as the broker's delayed delivery does for ``celery``. Without it
# the router waits on a timer of its own process, then calls ``submit``.


class ExecutorClass(Protocol):
    """A ``glint.executors`` plugin: the class, built with its one factory."""

    def from_settings(self, run: RunTask, settings: Settings, threads: int = 1) -> Executor: ...
