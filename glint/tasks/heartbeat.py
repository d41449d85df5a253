"""A running task's heartbeat: renews its lease, writes its progress, watches for cancel.

Every write goes through the lease (:mod:`glint.db.leases`), so once the task has been handed
to another runner the heartbeat reports ``lost`` and ``should_cancel()`` turns true: the script
stops, and nothing it writes afterwards lands.
"""

from __future__ import annotations

import contextvars
import functools
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from types import TracebackType

from glint.db import engine, leases, models

LOG = logging.getLogger(__name__)
CHECK_INTERVAL = 1.0  # seconds between cancel checks made by should_cancel()


class Heartbeat:
    """Renews ``lease`` every ``interval`` seconds on a thread while used as a context manager."""

    def __init__(self, db: engine.Database, lease: leases.Lease, *, seconds: float,
                 interval: float, stopping: threading.Event,
                 deadline: float | None = None, grace: float = 0.0,
                 on_overrun: Callable[[], None] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.db = db
        self.lease = lease
        self.seconds = seconds
        self.interval = interval
        self.lost = threading.Event()
        self.cancelled = threading.Event()
        self.timed_out = threading.Event()
        self._deadline = deadline
        self._grace = grace
        self._on_overrun = on_overrun
        self._stopping = stopping
        self._done = threading.Event()
        self._stopped = threading.Event()
        self._clock = clock
        self._checked = clock()

    def __enter__(self) -> Heartbeat:
        # In the runner's context: the heartbeat's log lines name the task (glint.logcontext).
        _THREADS.run(functools.partial(contextvars.copy_context().run, self._beat))
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop renewing, and return once no renewal is under way.

        The runner calls this before it writes the task's final status: a beat after that
        write would find the lease gone (the task is no longer processing) and report it lost,
        a false alarm. Safe to call more than once.
        """
        self._done.set()
        self._stopped.wait()

    def renew(self, **values: object) -> bool:
        """Extend the lease (writing ``values`` too); False, and ``lost`` set, when it is gone.

        After :meth:`stop` nothing is written (the task is being finished): False, quietly.
        """
        if self.lost.is_set() or self._done.is_set():
            return False
        try:
            with self.db.session() as session:
                held = leases.renew(session, self.lease, self.seconds, models.utcnow(), **values)
                if held and leases.cancel_requested(session, self.lease.task_id):
                    self.cancelled.set()
        except Exception:  # the database may be back by the next beat; the lease has slack
            LOG.warning("could not renew the lease of task %s", self.lease.task_id, exc_info=True)
            return True
        if not held:
            LOG.warning("task %s: lease %d was lost; stopping its script", self.lease.task_id,
                        self.lease.token)
            self.lost.set()
        return held

    def should_cancel(self) -> bool:
        """True once the task is cancelled, out of time, its lease lost, or glint is stopping."""
        if self._stopping.is_set() or self.lost.is_set() or self.cancelled.is_set():
            return True
        now = self._clock()
        if self._deadline is not None and now >= self._deadline:
            self.timed_out.set()
            return True
        if now - self._checked >= CHECK_INTERVAL:
            self._checked = now
            self._check()
        return self.lost.is_set() or self.cancelled.is_set()

    def _check(self) -> None:
        try:
            with self.db.reader() as session:
                task = session.get(models.Task, self.lease.task_id)
                if task is None or task.lease_token != self.lease.token:
                    self.lost.set()
                elif task.cancel_requested:
                    self.cancelled.set()
        except Exception:
            LOG.warning("could not check task %s for cancellation", self.lease.task_id,
                        exc_info=True)

    def _beat(self) -> None:
        threading.current_thread().name = f"glint-heartbeat-{self.lease.task_id[:8]}"
        try:
            self._loop()
        finally:
            self._stopped.set()

    def _loop(self) -> None:
        while not self._done.wait(self.interval):
            if self._overran():
                return
            if not self.renew():
                return

    def _overran(self) -> bool:
        """Past the deadline: ask the script to stop; past the grace too: give up on it."""
        if self._deadline is None:
            return False
        now = self._clock()
        if now < self._deadline:
            return False
        self.timed_out.set()
        if now < self._deadline + self._grace:
            return False
        LOG.error("task %s ran past its time limit and did not stop; failing it",
                  self.lease.task_id)
        self.lost.set()  # whatever the script still writes is refused by the lease
        if self._on_overrun is not None:
            self._on_overrun()
        return True


class _Threads:
    """Daemon threads for heartbeats; one whose heartbeat ended waits for the next.

    Starting a thread waits until the new thread has run: on a busy machine that wait was
    about a millisecond of every task's dispatch (create → processing) latency. An idle thread
    here takes the next heartbeat without it. There are never more threads than heartbeats
    once ran at the same time.
    """

    def __init__(self) -> None:
        self.reset()
        os.register_at_fork(after_in_child=self.reset)  # a forked child has none of the threads

    def reset(self) -> None:
        self._lock = threading.Lock()
        self._idle = 0
        self._work: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()

    def run(self, work: Callable[[], None]) -> None:
        with self._lock:
            if self._idle:
                self._idle -= 1
                self._work.put(work)
                return
        threading.Thread(target=self._serve, args=(work,), daemon=True,
                         name="glint-heartbeat").start()

    def _serve(self, work: Callable[[], None]) -> None:
        while True:
            try:
                work()
            except Exception:  # a heartbeat logs its own failures; this thread carries on
                LOG.exception("a heartbeat failed")
            threading.current_thread().name = "glint-heartbeat"
            with self._lock:
                self._idle += 1
            work = self._work.get()


_THREADS = _Threads()
