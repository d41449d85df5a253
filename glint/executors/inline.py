"""Runs each task in the caller, before ``submit`` returns (tests and debugging)."""

from __future__ import annotations

from glint.executors import base


class InlineExecutor:
    def __init__(self, run: base.RunTask, threads: int = 1) -> None:
        self._run = run
        self._closed = False

    def submit(self, task_id: str, task_type: str = "") -> None:
        if self._closed:
            return  # stays pending; picked up at the next start
        self._run(task_id)

    def shutdown(self, wait: bool = True, timeout: float | None = None) -> None:
        self._closed = True
