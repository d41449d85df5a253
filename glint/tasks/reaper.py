"""The reaper: finds tasks whose runner was lost and tasks whose message was lost.

It runs on a thread inside ``glint serve`` and ``glint worker``, every ``reaper_interval``
seconds, on as many nodes as there are: each pass locks the rows it handles (``FOR UPDATE SKIP
LOCKED`` on PostgreSQL), so two reapers never handle the same task. The moves themselves are the
runner's (:meth:`glint.tasks.runner.Runner.reap`); the reaper publishes what they hand back:
to the broker, or for an in-process executor to this process's own pool.

Each pass also sweeps the image store and the staging area (at most every ``SWEEP_INTERVAL``
seconds) of unfinished writes older than ``store_tmp_max_age``: runs killed mid-write leave them,
and on a store shared by several nodes, or by the API workers of ``glint serve --workers N``, no
one process can tell which of the others' writes are still alive.
"""

from __future__ import annotations

import logging
import threading
import time

from glint import errors, metrics
from glint.settings import Settings
from glint.stores.base import Store
from glint.tasks import routing
from glint.tasks.recovery import Role
from glint.tasks.runner import Requeued, Runner

LOG = logging.getLogger(__name__)
SWEEP_INTERVAL = 300.0  # seconds between sweeps of the store's unfinished writes


class Reaper:
    def __init__(self, runner: Runner, router: routing.Router, settings: Settings,
                 role: Role = Role.SERVE) -> None:
        self.runner = runner
        self.router = router
        self.settings = settings
        self.role = role
        self._stop = threading.Event()
        self.last_pass: float | None = None  # time.monotonic() of the last good pass
        self._thread: threading.Thread | None = None
        self._last_sweep = float("-inf")

    @property
    def republishes(self) -> bool:
        """Remote executors lose messages. A local queue is rebuilt at start-up, except that an
        API worker of ``glint serve --workers N`` that stopped (or died while its supervisor
        was stopping) leaves its queued tasks pending while its siblings serve on."""
        return self.role.republishes or self.router.remote

    def run_once(self) -> int:
        """One pass; returns how many tasks were published again."""
        items = self.runner.reap()
        requeued = len(items)
        if self.republishes:
            items += self.runner.stale_pending(self.settings.task_republish_after)
        for item in items:
            self._publish(item)
        metrics.REAPER_ACTIONS.labels("republish").inc(len(items) - requeued)
        self.sweep_store()
        return len(items)

    def sweep_store(self, clock: float | None = None) -> int:
        """Remove the unfinished writes older than ``store_tmp_max_age`` of the store and the
        staging area, if it is time to (the first pass, then every SWEEP_INTERVAL); returns how
        many went."""
        now = time.monotonic() if clock is None else clock
        if now - self._last_sweep < SWEEP_INTERVAL:
            return 0
        self._last_sweep = now
        areas = {"store": self.runner.store, "staging area": self.runner.images.staging}
        return sum(self._sweep(name, area) for name, area in areas.items())

    def _sweep(self, name: str, area: Store) -> int:
        try:
            removed = area.remove_temporary_files(older_than=self.settings.store_tmp_max_age)
        # A shared mount that went away, an object store unreachable: the next sweep tries again.
        except (OSError, errors.StoreError) as exc:
            LOG.warning("could not sweep the %s's unfinished writes: %s", name, exc)
            return 0
        metrics.REAPER_ACTIONS.labels("sweep").inc(removed)
        if removed:
            LOG.info("removed %d unfinished %s writes older than %g s", removed, name,
                     self.settings.store_tmp_max_age)
        return removed

    def start(self) -> None:
        if self.settings.reaper_interval <= 0 or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._loop, name="glint-reaper", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    @property
    def running(self) -> bool:
        return self._thread is not None

    def _loop(self) -> None:
        self.last_pass = time.monotonic()  # started: judged from now on (glint.health)
        while not self._stop.wait(self.settings.reaper_interval):
            try:
                self.run_once()
            except Exception:  # the database may be down; the next pass tries again
                LOG.exception("reaper pass failed")
            else:
                self.last_pass = time.monotonic()

    def _publish(self, item: Requeued) -> None:
        try:
            self.router.submit(item.task_id, item.task_type)
        except errors.ServiceUnavailable as exc:  # still pending: a later pass publishes it
            LOG.warning("could not publish task %s again: %s", item.task_id, exc.message)
