"""The reaper: finds tasks whose runner was lost and tasks whose message was lost.

It runs on a thread inside ``glint serve`` and ``glint worker``, every ``reaper_interval``
seconds, on as many nodes as there are: each pass locks the rows it handles (``FOR UPDATE SKIP
LOCKED`` on PostgreSQL), so two reapers never handle the same task. The moves themselves are the
runner's (:meth:`glint.tasks.runner.Runner.reap`); the reaper publishes what they hand back.
"""

from __future__ import annotations

import logging
import threading

from glint import errors
from glint.settings import Settings
from glint.tasks import routing
from glint.tasks.runner import Requeued, Runner

LOG = logging.getLogger(__name__)


class Reaper:
    def __init__(self, runner: Runner, router: routing.Router, settings: Settings) -> None:
        self.runner = runner
        self.router = router
        self.settings = settings
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def republishes(self) -> bool:
        """Only remote executors lose messages; a local queue is rebuilt at start-up."""
        return any(getattr(e, "remote", False) for e in self.router.executors.values())

    def run_once(self) -> int:
        """One pass; returns how many tasks were published again."""
        items = self.runner.reap()
        if self.republishes:
            items += self.runner.stale_pending(self.settings.task_republish_after)
        for item in items:
            self._publish(item)
        return len(items)

    def start(self) -> None:
        if self.settings.reaper_interval <= 0 or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._loop, name="glint-reaper", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _loop(self) -> None:
        while not self._stop.wait(self.settings.reaper_interval):
            try:
                self.run_once()
            except Exception:  # the database may be down; the next pass tries again
                LOG.exception("reaper pass failed")

    def _publish(self, item: Requeued) -> None:
        try:
            self.router.submit(item.task_id, item.task_type)
        except errors.ServiceUnavailable as exc:  # still pending: a later pass publishes it
            LOG.warning("could not publish task %s again: %s", item.task_id, exc.message)
