"""Runs each task in the caller, before ``submit`` returns (tests and debugging)."""

from __future__ import annotations

import time

from glint.executors import base
from glint.settings import Settings


class InlineExecutor(base.ExecutorBase):
    @classmethod
    def from_settings(cls, run: base.RunTask, settings: Settings,
                      threads: int = 1) -> InlineExecutor:
        del settings
        return cls(run, threads=threads)

    def __init__(self, run: base.RunTask, threads: int = 1) -> None:
        self._run = run
        self._closed = False

    def submit(self, task_id: str, task_type: str = "") -> None:
        if self._closed:
            return  # stays pending; picked up at the next start
        self._run(task_id)

    def submit_later(self, task_id: str, task_type: str, delay: float) -> None:
        """Wait ``delay`` seconds, then run the task: still before ``submit`` returns."""
        time.sleep(max(0.0, delay))
        self.submit(task_id, task_type)

    def shutdown(self, wait: bool = True, timeout: float | None = None) -> None:
        self._closed = True
