"""A running task's heartbeat: renews its lease, writes its progress, watches for cancel.

Every write goes through the lease (:mod:`glint.db.leases`), so once the task has been handed
to another runner the heartbeat reports ``lost`` and ``should_cancel()`` turns true: the script
stops, and nothing it writes afterwards lands.
"""

from __future__ import annotations

import logging
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
        self._clock = clock
        self._checked = clock()
        self._thread = threading.Thread(target=self._loop, daemon=True,
                                        name=f"glint-heartbeat-{lease.task_id[:8]}")

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._done.set()
        self._thread.join()

    def renew(self, **values: object) -> bool:
        """Extend the lease (writing ``values`` too); False, and ``lost`` set, when it is gone."""
        if self.lost.is_set():
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
