"""How a task ends: the one way its final status is written, the messages, the event.

A final status is written in one of two places, with the same values (:func:`final_values`):
through the run's lease when its runner records the outcome (:meth:`Endings.finish`, which
writes nothing for a runner that lost its lease), or on a row a transaction already holds when
something else ends the task (cancel, the reaper, start-up: :meth:`Endings.end`). Either way
the run's record is closed (:mod:`glint.db.attempts`), the caller's credentials are dropped
from the hand-off, and the event goes out after the commit (:meth:`Endings.notify`), which
also counts the task.
"""

from __future__ import annotations

import datetime
import logging
from typing import Any

from sqlalchemy import orm

from glint import metrics
from glint.db import attempts, engine, leases, models
from glint.notifiers import base as notifiers
from glint.settings import Settings
from glint.tasks import states, views
from glint.tasks.handoff import Handoff
from glint.tasks.heartbeat import Heartbeat

LOG = logging.getLogger("glint.tasks.runner")
INTERRUPTED = ("glint stopped while this task was running; the task was failed at the next "
               "start and its partial work removed. Create the task again to retry.")
CANCELLED = "The task was cancelled on request; its partial work was removed."
LOST = ("The worker running this task was lost {attempts} time(s) (its lease expired); the "
        "task was failed and its partial work removed. Create the task again to retry.")
REQUEUED = ("The worker running this task ({owner}) was lost (its lease expired); the task "
            "was queued again (attempt {next} of {limit}).")
UNSUBMITTED = "The task could not be handed to a worker: {reason}"
TIMED_OUT = ("The task ran past its time limit of {limit:g} seconds and was stopped; its partial "
             "work was removed.")
ORPHANED = ("The glint process that took this task's request, and alone held what it needs in "
            "memory (the caller's credentials, never stored), is gone; the task was failed. "
            "Start it again (for an import: import the image again).")
OVERRUN = ("The task ran past its time limit of {limit:g} seconds and did not stop when asked; "
           "it was failed and its partial work removed.")
MESSAGE_LIMIT = 65535  # the message column's size


def final_values(target: str, now: datetime.datetime, time_to_live: float, message: str = "",
                 result: dict[str, Any] | None = None) -> dict[str, Any]:
    """The columns a final status sets, however it is written."""
    return {"status": target, "result": result, "message": message[:MESSAGE_LIMIT],
            "expires_at": now + datetime.timedelta(hours=time_to_live), "updated_at": now,
            "lease_expires_at": None}


class Endings:
    def __init__(self, db: engine.Database, notifier: notifiers.Notifier, settings: Settings,
                 handoff: Handoff) -> None:
        self.db = db
        self.notifier = notifier
        self.settings = settings
        self.handoff = handoff

    def finish(self, task: models.Task, beat: Heartbeat, target: str,
               result: dict[str, Any] | None = None, message: str = "") -> bool:
        """Record a run's outcome through its lease; False (nothing written) for a zombie.

        The heartbeat stops first: one renewing after this write would call the lease lost.
        """
        states.check(states.PROCESSING, target)
        beat.stop()
        now = models.utcnow()
        values = final_values(target, now, self.settings.task_time_to_live, message, result)
        with self.db.one_statement() as connection:
            row = leases.end_run(connection, beat.lease, values, target, message, now)
        self.handoff.discard(task.id)
        if row is None:
            LOG.warning("task %s: lease %d lost; its %s was not recorded", task.id,
                        beat.lease.token, target)
            return False
        LOG.log(logging.WARNING if target == states.FAILURE else logging.INFO,
                "task ended: %s%s", target, f" ({message})" if message else "")
        self.notify(f"task.{target}", row, notifiers.ERROR if target == states.FAILURE
                    else notifiers.INFO)
        return True

    def end(self, session: orm.Session, row: models.Task, target: str, message: str,
            fence: bool = False) -> None:
        """Set a final status on a row this transaction holds (cancel, reaper, start-up).

        ``fence``: take the lease from whoever holds it, so nothing a runner still writes
        lands."""
        states.check(row.status, target)
        if fence:
            row.lease_token += 1
        now = models.utcnow()
        for column, value in final_values(target, now, self.settings.task_time_to_live,
                                          message).items():
            setattr(row, column, value)
        attempts.end(session, row.id, target, message, now)
        session.flush()
        self.handoff.discard(row.id)

    def notify(self, event_type: str, task: models.Task,
               priority: str = notifiers.INFO) -> None:
        """The event of a change just committed; a final status is counted here too (every
        way a task ends comes through, whatever notifications are disabled)."""
        if event_type in ("task.success", "task.failure"):
            metrics.observe_finished(task.type, task.status)
        if notifiers.wants(self.notifier, event_type, priority):
            self.notifier.notify(notifiers.Event(event_type, views.notification(task), priority))

    def failed(self, row: models.Task) -> None:
        """After the commit of a failure :meth:`end` wrote: its event."""
        self.notify("task.failure", row, notifiers.ERROR)
