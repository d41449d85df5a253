"""The runner: the only code that changes a task's status.

``run(task_id)`` claims the task under a lease (a conditional update, so a duplicate call or a
duplicate message does nothing), keeps the lease alive with a heartbeat, builds the script's
context (:mod:`glint.tasks.context_factory`), calls the script's ``main`` and records success
or failure through the lease: a runner that lost its lease writes nothing. The other moments
of a task's life have their own modules, which the runner holds: the retry policy after a
``TransientError`` (:mod:`glint.tasks.retry`), how a task ends (:mod:`glint.tasks.endings`),
and recovery of tasks whose runner is gone (:mod:`glint.tasks.recovery`). Notifications go
out after each commit.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from glint import errors, logcontext, metrics
from glint.context import RequestContext
from glint.db import engine, leases, models
from glint.db import tasks as task_rows
from glint.images import service as images
from glint.images.locations import Locations
from glint.notifiers import base as notifiers
from glint.scripts import contract
from glint.scripts.registry import LoadedScript, Registry
from glint.settings import Settings
from glint.stores.base import Store
from glint.tasks import binding, states
from glint.tasks.context_factory import ContextFactory
from glint.tasks.endings import (
    CANCELLED,
    INTERRUPTED,
    LOST,
    ORPHANED,
    OVERRUN,
    REQUEUED,
    TIMED_OUT,
    UNSUBMITTED,
    Endings,
)
from glint.tasks.handoff import Handoff
from glint.tasks.heartbeat import Heartbeat
from glint.tasks.recovery import Recovery, Requeued, lease_owner, run_cleanup, serve_id
from glint.tasks.retry import Resubmit, Retries, RetryPolicy
from glint.tasks.script_api import ScriptDbApi

__all__ = ["CANCELLED", "INTERRUPTED", "LOST", "ORPHANED", "OVERRUN", "REQUEUED", "TIMED_OUT",
           "UNSUBMITTED", "Requeued", "Resubmit", "Runner", "lease_owner"]

LOG = logging.getLogger(__name__)


class Runner:
    """Runs tasks; holds the parts each moment of a task's life uses.

    The composition root (:func:`glint.app.build`) gives it the process's safety gate, its
    in-memory credential hand-off, the image locations service and the node's image cache
    (None when it is off)."""

    def __init__(self, db: engine.Database, registry: Registry, images_service: images.ImageService,
                 store: Store, notifier: notifiers.Notifier, settings: Settings,
                 owner: str | None = None, *, image_gate: contract.ImageGate,
                 handoff: Handoff, locations: Locations,
                 image_cache: contract.ImageCache | None = None) -> None:
        self.db = db
        self.registry = registry
        self.images = images_service
        self.store = store
        self.notifier = notifier
        self.settings = settings
        self.owner = owner or lease_owner()
        self.stopping = threading.Event()
        self.gate = image_gate
        # The callers' credentials, in this process's memory only (glint.tasks.handoff).
        self.handoff = handoff
        binding.LIVE.add(self.owner)
        self.contexts = ContextFactory(db, images_service, store, notifier, settings, self.gate,
                                       self.handoff, locations, image_cache)
        self.endings = Endings(db, notifier, settings, self.handoff)
        self.retries = Retries(db, RetryPolicy.from_settings(settings))
        self.recovery = Recovery(db, registry, images_service, settings, self.owner,
                                 self.endings, self.contexts)

    @property
    def serve_id(self) -> str:
        """The last part of ``owner``: shared by the processes of one ``glint serve``."""
        return serve_id(self.owner)

    @property
    def resubmit(self) -> Resubmit | None:
        """How a task re-queued for a retry is submitted again once due (the router's
        ``submit_later``, set by the composition root); without it the reaper re-publishes."""
        return self.retries.resubmit

    @resubmit.setter
    def resubmit(self, resubmit: Resubmit | None) -> None:
        self.retries.resubmit = resubmit

    # -- run -------------------------------------------------------------------------------

    def run(self, task_id: str) -> str:
        """Run one task to its final status. Safe to call twice: the second call does nothing.

        Returns how it went, in one line naming the task (``glint task <id> (<type>) ended
        failure: <message>``, ``... not claimed: ...``): the executor's own log line for the
        run (Celery's) says it. Every log line of the run names the task, its type, its project
        and the request that created it (glint.logcontext)."""
        with logcontext.bound(task_id=task_id):
            claimed = self._claim(task_id)
            if claimed is None:
                row = self.retries.resubmit_when_due(task_id)
                return f"glint task {task_id} not claimed: {_unclaimed(row, self.owner)}"
            task, lease = claimed
            with logcontext.bound(task_type=task.type, project_id=task.owner,
                                  request_id=(task.context or {}).get("request_id")):
                outcome = self._run_claimed(task, lease)
            return f"glint task {task_id} ({task.type}) {outcome}"

    def _run_claimed(self, task: models.Task, lease: leases.Lease) -> str:
        LOG.info("task started: attempt %d of %d on %s", task.attempts, task.max_attempts,
                 self.owner)
        started = time.monotonic()
        deadline = started + self.settings.task_time_limit
        with Heartbeat(self.db, lease, seconds=self.settings.task_lease,
                       interval=self.settings.task_heartbeat, stopping=self.stopping,
                       deadline=deadline, grace=self.settings.task_time_limit_grace,
                       on_overrun=lambda: self.recovery.overrun(task.id, lease)) as beat:
            outcome = self._execute(task, beat)
        metrics.TASK_DURATION.labels(task.type).observe(time.monotonic() - started)
        return outcome

    def _claim(self, task_id: str) -> tuple[models.Task, leases.Lease] | None:
        with self.db.one_statement() as connection:
            claimed = leases.claim_row(connection, task_id, self.owner,
                                       self.settings.task_lease, models.utcnow())
        if claimed is None:
            LOG.debug("task %s was not pending (or its lease is held); not running it", task_id)
            return None
        lease, task = claimed
        if task.attempts == 1 and not task.retries:  # its first claim: the wait since creation
            wait = (models.utcnow() - task.created_at).total_seconds()
            metrics.TASK_QUEUE_WAIT.labels(task.type).observe(max(wait, 0.0))
        self.endings.notify("task.processing", task)
        return task, lease

    def _execute(self, task: models.Task, beat: Heartbeat) -> str:
        """Run the script and record its outcome; that outcome, said briefly."""
        try:
            script = self.registry.get(task.type)
        except errors.NotFound:
            return self._finish(task, beat, states.FAILURE,
                                message=f"Task type '{task.type}' is not installed")
        ctx, api = self.contexts.build(
            task, attempt=task.attempts + task.retries, lease=beat.lease,
            should_cancel=beat.should_cancel,
            report=lambda text, data: beat.renew(message=text, progress=data))
        try:
            if script.cleanup is not None and (task.attempts > 1 or task.retries):
                script.cleanup(ctx)
            result = _json_object(script.main(ctx))
        except errors.TransientError as exc:
            if self.retries.policy.allows(task.retries) and not beat.should_cancel():
                message = self.retries.retry_later(task, beat, exc)
                return (_LOST_BEFORE.format(what="retry") if message is None
                        else f"re-queued: {_brief(message)}")
            return self._settle_failure(task, beat, script, ctx, api, exc)
        except (Exception, SystemExit) as exc:  # a script's failure ends its task only
            return self._settle_failure(task, beat, script, ctx, api, exc)
        if not self.endings.finish(task, beat, states.SUCCESS, result=result):
            self._discard_created(api)
            return _LOST_BEFORE.format(what=states.SUCCESS)
        return f"ended {states.SUCCESS}"

    def _settle_failure(self, task: models.Task, beat: Heartbeat, script: LoadedScript,
                        ctx: contract.ScriptContext, api: ScriptDbApi,
                        exc: BaseException) -> str:
        if beat.lost.is_set():
            LOG.warning("task %s: lease lost; its run stopped (%s)", task.id, exc)
            self._discard_created(api)
            return _LOST_BEFORE.format(what="failure")
        if beat.cancelled.is_set():
            run_cleanup(script, ctx)
            return self._finish(task, beat, states.FAILURE, message=CANCELLED)
        if beat.timed_out.is_set():
            run_cleanup(script, ctx)
            return self._finish(task, beat, states.FAILURE,
                                message=TIMED_OUT.format(limit=self.settings.task_time_limit))
        message = _message(task, exc)
        if isinstance(exc, errors.TransientError) and task.retries:
            message = f"{message} (gave up after {task.retries} retries)"
        return self._finish(task, beat, states.FAILURE, message=message)

    def _finish(self, task: models.Task, beat: Heartbeat, target: str,
                result: dict[str, Any] | None = None, message: str = "") -> str:
        """Record the outcome through the lease (nothing is written for a zombie); the
        outcome, said briefly."""
        if not self.endings.finish(task, beat, target, result=result, message=message):
            return _LOST_BEFORE.format(what=target)
        return f"ended {target}: {_brief(message)}" if message else f"ended {target}"

    def _discard_created(self, api: ScriptDbApi) -> None:
        """A zombie's own images go: the task's new runner makes its own."""
        for image_id in api.created:
            try:
                self.images.discard(RequestContext.admin(), image_id)
            except Exception:
                LOG.exception("could not discard image %s of a lost run", image_id)

    # -- ends that come from outside a run ---------------------------------------------------

    def cancel(self, task_id: str) -> None:
        """Ask for the task to stop. A pending task fails now; a running one at its next check."""
        with self.db.session() as session:
            if not leases.request_cancel(session, task_id):
                return
            row = task_rows.get_any(session, task_id)
            if row is None or row.status != states.PENDING:
                return  # the runner holding it sees the request (should_cancel) and stops
            self.endings.end(session, row, states.FAILURE, CANCELLED)
        if row.retries or row.attempts:  # it ran before: waiting to retry, or re-queued
            self.recovery.undo(row)
        self.endings.failed(row)

    def fail_unsubmitted(self, task_id: str, reason: str) -> None:
        """A pending task that could not be handed to an executor ends here."""
        with self.db.session() as session:
            row = task_rows.get_any(session, task_id)
            if row is None or row.status != states.PENDING:
                return
            self.endings.end(session, row, states.FAILURE, UNSUBMITTED.format(reason=reason))
        self.endings.failed(row)

    # -- recovery (glint.tasks.recovery) -----------------------------------------------------

    def recover(self, is_local: Callable[[str], bool] = lambda task_type: True) -> list[str]:
        """At start-up: fail tasks a dead process left ``processing``; return pending ids."""
        return self.recovery.recover(is_local)

    def pending(self, is_local: Callable[[str], bool] = lambda task_type: True) -> list[str]:
        """The pending tasks of the types this process runs in-process (``is_local``)."""
        return self.recovery.pending(is_local)

    def reap(self, limit: int = 100) -> list[Requeued]:
        """Re-queue or fail tasks whose runner was lost; the re-queued ones, to publish."""
        return self.recovery.reap(limit)

    def stale_pending(self, older_than: float, limit: int = 100) -> list[Requeued]:
        """Pending tasks untouched for ``older_than`` seconds (their message may be lost)."""
        return self.recovery.stale_pending(older_than, limit)


_LOST_BEFORE = "lost its lease; its {what} was not recorded"
BRIEF = 300  # characters of a task's message in its outcome line


def _brief(message: str) -> str:
    return message if len(message) <= BRIEF else message[:BRIEF - 3] + "..."


def _unclaimed(row: models.Task | None, owner: str) -> str:
    """Why a claim found nothing to take, from the row as read just after."""
    if row is None:
        return "no such task"
    if row.status in states.FINAL:
        return f"it already ended {row.status}"
    if row.status == states.PROCESSING:
        return f"it is processing under {row.lease_owner}'s lease"
    if row.retry_at is not None and row.retry_at > models.utcnow():
        return f"it waits to retry at {row.retry_at:%H:%M:%S} UTC (submitted again for then)"
    if row.bound_to is not None and row.bound_to != owner:
        return f"it is bound to {row.bound_to}"
    return "it is pending but not claimable (cancel requested, or out of attempts)"


def _message(task: models.Task, exc: BaseException) -> str:
    if isinstance(exc, errors.GlintError):
        return exc.message
    LOG.error("task %s (%s) failed with an unexpected error", task.id, task.type, exc_info=exc)
    return f"Task failed due to an internal error ({type(exc).__name__}: {exc})"


def _json_object(result: Any) -> dict[str, Any]:
    if result is None:
        return {}
    if not isinstance(result, dict):
        raise errors.ScriptError(f"script returned {type(result).__name__}, not a JSON object")
    try:
        return dict(json.loads(json.dumps(result)))
    except (TypeError, ValueError) as exc:
        raise errors.ScriptError(f"script result is not JSON-serialisable: {exc}") from exc
