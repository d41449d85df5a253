"""The retry policy: a run that raised ``TransientError`` waits out a backoff, off any slot.

The task goes back to ``pending`` with ``retry_at`` set (through the run's lease) and is
submitted again for then: through the router's ``submit_later`` (the broker's delayed
delivery, or a timer of this process). Until it is due a claim passes it by; a message that
comes early (a duplicate, the reaper's, start-up's) only submits it again for when it is due.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
from collections.abc import Callable

from glint import errors, metrics
from glint.db import engine, leases, models
from glint.db import tasks as task_rows
from glint.settings import Settings
from glint.tasks import states
from glint.tasks.endings import MESSAGE_LIMIT
from glint.tasks.heartbeat import Heartbeat

LOG = logging.getLogger("glint.tasks.runner")

Resubmit = Callable[[str, str, float], None]  # (task id, task type, delay in seconds)


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    """How often and how late a transient failure is tried again (``task_retry_*``)."""

    limit: int
    backoff: float
    backoff_max: float

    @classmethod
    def from_settings(cls, settings: Settings) -> RetryPolicy:
        return cls(limit=settings.task_retry_limit, backoff=settings.task_retry_backoff,
                   backoff_max=settings.task_retry_backoff_max)

    def allows(self, retries: int) -> bool:
        """Whether a task retried ``retries`` times may be retried once more."""
        return retries < self.limit

    def delay(self, retry: int) -> float:
        """Seconds before retry number ``retry`` (1 for the first): doubling, capped."""
        return float(min(self.backoff * 2 ** (retry - 1), self.backoff_max))


class Retries:
    def __init__(self, db: engine.Database, policy: RetryPolicy) -> None:
        self.db = db
        self.policy = policy
        # How a task re-queued for a retry is submitted again once due: the composition root
        # sets the router's ``submit_later``; without it the reaper's re-publishing does.
        self.resubmit: Resubmit | None = None

    def retry_later(self, task: models.Task, beat: Heartbeat,
                    exc: errors.TransientError) -> str | None:
        """Re-queue the task until its backoff has passed, saying so in its message, and have
        it submitted again then. The slot is free meanwhile; its cleanup runs before the
        re-run, wherever that is. The message written; None for a zombie (nothing written)."""
        retry = task.retries + 1
        delay = self.policy.delay(retry)
        message = (f"Attempt failed with a transient error ({exc.message}); retrying in "
                   f"{delay:g} s (retry {retry} of {self.policy.limit})")[:MESSAGE_LIMIT]
        beat.stop()
        now = models.utcnow()
        with self.db.session() as session:
            requeued = leases.retry_later(session, beat.lease,
                                          now + datetime.timedelta(seconds=delay), message, now)
        if not requeued:
            LOG.warning("task %s: lease %d lost; its retry was not queued", task.id,
                        beat.lease.token)
            return None
        metrics.TASK_RETRIES.labels(task.type).inc()
        LOG.info("task %s: transient error (%s); retry %d in %g s", task.id, exc.message,
                 retry, delay)
        self.submit_later(task.id, task.type, delay)
        return message

    def resubmit_when_due(self, task_id: str) -> models.Task | None:
        """A task that is waiting out a retry's backoff (its message came early): submit it
        again for when it is due. The row as read (None: there is none)."""
        with self.db.reader() as session:
            row = task_rows.get_any(session, task_id)
        now = models.utcnow()
        if (row is not None and row.status == states.PENDING and row.retry_at is not None
                and row.retry_at > now):
            self.submit_later(task_id, row.type, (row.retry_at - now).total_seconds())
        return row

    def submit_later(self, task_id: str, task_type: str, delay: float) -> None:
        if self.resubmit is None:
            return  # pending: the reaper's re-publishing finds it
        try:
            self.resubmit(task_id, task_type, delay)
        except errors.ServiceUnavailable as exc:  # pending: the reaper re-publishes it
            LOG.warning("task %s: could not queue its retry: %s", task_id, exc.message)
