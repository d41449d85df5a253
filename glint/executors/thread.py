"""A bounded pool of threads in this process (the embedded default)."""

from __future__ import annotations

import logging
import threading
from concurrent import futures

from glint.executors import base
from glint.settings import Settings

LOG = logging.getLogger(__name__)


class ThreadExecutor(base.ExecutorBase):
    """Runs tasks on ``threads`` worker threads; extra tasks wait in the pool's queue.

    A task still queued at shutdown is dropped from the queue but stays ``pending`` in the
    database, where the next start picks it up: shutdown never loses one.
    """

    @classmethod
    def from_settings(cls, run: base.RunTask, settings: Settings,
                      threads: int = 8) -> ThreadExecutor:
        del settings
        return cls(run, threads=threads)

    def __init__(self, run: base.RunTask, threads: int = 8) -> None:
        self._run = run
        self._pool = futures.ThreadPoolExecutor(max_workers=threads,
                                                thread_name_prefix="glint-task")
        self._lock = threading.Lock()
        self._closed = False
        self._running: set[futures.Future[None]] = set()

    def submit(self, task_id: str, task_type: str = "") -> None:
        with self._lock:
            if self._closed:
                LOG.info("executor is shutting down; task %s stays pending", task_id)
                return
            future = self._pool.submit(self._guarded, task_id)
            self._running.add(future)
        future.add_done_callback(self._forget)

    def shutdown(self, wait: bool = True, timeout: float | None = None) -> None:
        with self._lock:
            self._closed = True
            pending = list(self._running)
        for future in pending:
            future.cancel()  # only tasks not yet started are cancelled
        if wait:
            futures.wait(pending, timeout=timeout)
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _guarded(self, task_id: str) -> None:
        try:
            self._run(task_id)
        except Exception:  # the runner records failures itself; this is a last resort
            LOG.exception("runner raised for task %s", task_id)

    def _forget(self, future: futures.Future[None]) -> None:
        with self._lock:
            self._running.discard(future)
