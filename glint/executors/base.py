"""The executor contract: a task id in, nothing else.

An executor is built with the function that runs a task (the runner, ``run(task_id)``) and
decides where and when to call it. Everything else about the task is in the database, so a
remote executor only has to carry the id.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

RunTask = Callable[[str], None]


class Executor(Protocol):
    def submit(self, task_id: str) -> None:
        """Arrange for the task to run. Must not block on the task's work."""
        ...

    def shutdown(self, wait: bool = True, timeout: float | None = None) -> None:
        """Stop taking tasks; with ``wait``, let running ones finish (up to ``timeout`` seconds)."""
        ...
