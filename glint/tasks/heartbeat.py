"""A running task's heartbeat: renews its lease, writes its progress, watches for cancel.

Every write goes through the lease (:mod:`glint.db.leases`), so once the task has been handed
to another runner the heartbeat reports ``lost`` and ``should_cancel()`` turns true: the script
stops, and nothing it writes afterwards lands.

The heartbeats of a process share one timer thread (:class:`_Schedule`): it keeps when each is
due and hands a due renewal to a thread of a reused pool, so a renewal that waits (a slow
database, a locked row) holds up no other task's. Starting and stopping a heartbeat waits for no
thread: a task that ends before its first beat (most short tasks) costs a heap entry.
"""

from __future__ import annotations

import contextvars
import heapq
import itertools
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
        self._idle = threading.Event()  # no renewal of the timer's under way
        self._idle.set()
        self._lock = threading.Lock()
        self._clock = clock
        self._checked = clock()
        self._context = contextvars.Context()

    def __enter__(self) -> Heartbeat:
        # In the runner's context: the heartbeat's log lines name the task (glint.logcontext).
        self._context = contextvars.copy_context()
        _SCHEDULE.add(self, self.interval)
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
        with self._lock:
            first = not self._done.is_set()
            self._done.set()
        if first:
            _SCHEDULE.dropped()
        self._idle.wait()

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

    def _due(self) -> bool:
        """The timer's call when this heartbeat is due: True (and the renewal under way from
        here) unless it was stopped."""
        with self._lock:
            if self._done.is_set():
                return False
            self._idle.clear()
            return True

    def _beat(self) -> None:
        """One beat, on a pool thread: renew, and be due again ``interval`` seconds later
        unless the task is over, its lease lost or its time up."""
        threading.current_thread().name = f"glint-heartbeat-{self.lease.task_id[:8]}"
        again = False
        try:
            again = self._context.run(self._renew_in_time)
        finally:
            with self._lock:
                again = again and not self._done.is_set()
                if again:
                    _SCHEDULE.add(self, self.interval)
                self._idle.set()

    def _renew_in_time(self) -> bool:
        return not self._overran() and self.renew()

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
    """Daemon threads for renewals; one whose renewal ended waits for the next.

    Starting a thread waits until the new thread has run; an idle thread here takes the next
    renewal without it. There are never more threads than renewals once under way at the same
    time.
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


class _Schedule:
    """When each heartbeat of this process is next due, on one timer thread (started with the
    first heartbeat); a due one runs on a :class:`_Threads` thread. A stopped heartbeat's entry
    is dropped when it comes due, or sooner, when the stopped ones are most of the entries."""

    def __init__(self, threads: _Threads) -> None:
        self._threads = threads
        self.reset()
        os.register_at_fork(after_in_child=self.reset)  # a forked child has no timer thread

    def reset(self) -> None:
        self._due: list[tuple[float, int, Heartbeat]] = []
        self._order = itertools.count()  # ties: first added, first due
        self._changed = threading.Condition(threading.Lock())
        self._thread: threading.Thread | None = None
        self._stopped = 0  # entries of stopped heartbeats (an estimate: see dropped)

    def dropped(self) -> None:
        """A heartbeat stopped: its entry is dead weight. Once those are most of the heap (a
        burst of short tasks), it is rebuilt without them."""
        with self._changed:
            self._stopped += 1
            if self._stopped > 64 and self._stopped * 2 > len(self._due):
                self._due = [entry for entry in self._due if not entry[2]._done.is_set()]
                heapq.heapify(self._due)
                self._stopped = 0

    def add(self, beat: Heartbeat, delay: float) -> None:
        at = time.monotonic() + delay
        with self._changed:
            heapq.heappush(self._due, (at, next(self._order), beat))
            if self._thread is None:
                self._thread = threading.Thread(target=self._serve, daemon=True,
                                                name="glint-heartbeats")
                self._thread.start()
            elif self._due[0][2] is beat:  # due before all others: the timer must wake sooner
                self._changed.notify()

    def _serve(self) -> None:
        while True:
            with self._changed:
                while not self._due or self._due[0][0] > (now := time.monotonic()):
                    self._changed.wait(self._due[0][0] - now if self._due else None)
                beat = heapq.heappop(self._due)[2]
                if beat._done.is_set():
                    self._stopped = max(0, self._stopped - 1)
                    continue
            if beat._due():
                self._threads.run(beat._beat)


_SCHEDULE = _Schedule(_Threads())
