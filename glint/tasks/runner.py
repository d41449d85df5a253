"""The runner: the only code that changes a task's status.

``run(task_id)`` claims the task under a lease (a conditional update, so a duplicate call or a
duplicate message does nothing), keeps the lease alive with a heartbeat, builds the script's
context, calls the script's ``main`` and records success or failure through the lease: a
runner that lost its lease writes nothing. After a ``TransientError`` the task goes back to
``pending`` until its backoff has passed, and is submitted again then: no slot waits for it.
The reaper's moves (re-queue or fail a task whose runner was lost) and cancellation are here
too. Notifications go out after each commit.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from glint import errors, gate, logcontext, metrics
from glint.context import RequestContext
from glint.db import engine, leases, models
from glint.db import images as image_rows
from glint.db import tasks as task_rows
from glint.images import service as images
from glint.notifiers import base as notifiers
from glint.scripts import contract
from glint.scripts.registry import LoadedScript, Registry
from glint.settings import Settings
from glint.stores.base import Store
from glint.tasks import binding, states, views
from glint.tasks.context_factory import ContextFactory
from glint.tasks.handoff import Handoff
from glint.tasks.heartbeat import Heartbeat
from glint.tasks.script_api import ScriptDbApi

LOG = logging.getLogger(__name__)
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


Resubmit = Callable[[str, str, float], None]  # (task id, task type, delay in seconds)


@dataclasses.dataclass(frozen=True)
class Requeued:
    """A task the reaper handed back: publish it again."""

    task_id: str
    task_type: str


def lease_owner(serve_id: str | None = None) -> str:
    """The name a runner takes leases under: ``host:pid:serve id``.

    The serve id is random for each process, except that the API workers of one ``glint serve
    --workers N`` share their supervisor's: its start-up recovery spares their tasks.
    """
    return f"{socket.gethostname()}:{os.getpid()}:{serve_id or uuid.uuid4().hex[:8]}"


class Runner:
    def __init__(self, db: engine.Database, registry: Registry, images_service: images.ImageService,
                 store: Store, notifier: notifiers.Notifier, settings: Settings,
                 owner: str | None = None, handoff: Handoff | None = None) -> None:
        self.db = db
        self.registry = registry
        self.images = images_service
        self.store = store
        self.notifier = notifier
        self.settings = settings
        self.owner = owner or lease_owner()
        self.stopping = threading.Event()
        self.gate = gate.ImageGate.from_settings(settings)
        # The callers' credentials, in this process's memory only (glint.tasks.handoff).
        self.handoff = handoff if handoff is not None else Handoff()
        self.contexts = ContextFactory(db, images_service, store, notifier, settings, self.gate,
                                       self.handoff)
        binding.LIVE.add(self.owner)
        # How a task re-queued for a retry is submitted again once due: the composition root
        # sets the router's ``submit_later``; without it the reaper's re-publishing does.
        self.resubmit: Resubmit | None = None

    @property
    def serve_id(self) -> str:
        """The last part of ``owner``: shared by the processes of one ``glint serve``."""
        return self.owner.rpartition(":")[2]

    def run(self, task_id: str) -> None:
        """Run one task to its final status. Safe to call twice: the second call does nothing.

        Every log line of the run names the task, its type, its project and the request that
        created it (glint.logcontext)."""
        with logcontext.bound(task_id=task_id):
            claimed = self._claim(task_id)
            if claimed is None:
                self._resubmit_when_due(task_id)
                return
            task, lease = claimed
            with logcontext.bound(task_type=task.type, project_id=task.owner,
                                  request_id=(task.context or {}).get("request_id")):
                self._run_claimed(task, lease)

    def _run_claimed(self, task: models.Task, lease: leases.Lease) -> None:
        LOG.info("task started: attempt %d of %d on %s", task.attempts, task.max_attempts,
                 self.owner)
        started = time.monotonic()
        deadline = started + self.settings.task_time_limit
        with Heartbeat(self.db, lease, seconds=self.settings.task_lease,
                       interval=self.settings.task_heartbeat, stopping=self.stopping,
                       deadline=deadline, grace=self.settings.task_time_limit_grace,
                       on_overrun=lambda: self._overrun(task.id, lease)) as beat:
            self._execute(task, beat)
        metrics.TASK_DURATION.labels(task.type).observe(time.monotonic() - started)

    def cancel(self, task_id: str) -> None:
        """Ask for the task to stop. A pending task fails now; a running one at its next check."""
        with self.db.session() as session:
            if not leases.request_cancel(session, task_id):
                return
            row = task_rows.get_any(session, task_id)
            if row is None or row.status != states.PENDING:
                return  # the runner holding it sees the request (should_cancel) and stops
            self._end(session, row, states.FAILURE, message=CANCELLED)
        if row.retries or row.attempts:  # it ran before: waiting to retry, or re-queued
            self._discard_unfinished_image(row)
        self._notify("task.failure", row, notifiers.ERROR)

    def fail_unsubmitted(self, task_id: str, reason: str) -> None:
        """A pending task that could not be handed to an executor ends here."""
        with self.db.session() as session:
            row = task_rows.get_any(session, task_id)
            if row is None or row.status != states.PENDING:
                return
            self._end(session, row, states.FAILURE, message=UNSUBMITTED.format(reason=reason))
        self._notify("task.failure", row, notifiers.ERROR)

    def recover(self, is_local: Callable[[str], bool] = lambda task_type: True) -> list[str]:
        """At start-up: fail tasks a dead process left ``processing``; return pending ids.

        Only for task types this node runs in-process (``is_local``): its ``glint serve`` was
        their only runner, so a processing one was cut off. Run it where no other process of
        that ``glint serve`` is running: its one process, or the supervisor of ``--workers N``
        before it starts them (tasks of this serve id are spared, see :func:`lease_owner`).
        Remote executors' tasks, and those of a lost API worker, are the reaper's.
        Pending tasks never started, so they are simply submitted again. A processing task may
        have done part of its work: its image (if any, and not active) is discarded with its
        bytes, and the task fails with a message saying why.
        """
        with self.db.reader() as session:
            interrupted = task_rows.ids_with_status(session, states.PROCESSING)
            types = task_rows.types_of(session, interrupted)
        for task_id in interrupted:
            if is_local(types[task_id]):
                self._fail_interrupted(task_id, INTERRUPTED)
        return self.pending(is_local)

    def pending(self, is_local: Callable[[str], bool] = lambda task_type: True) -> list[str]:
        """The pending tasks of the types this process runs in-process (``is_local``).

        For an API worker of ``glint serve --workers N`` at start-up, which leaves the failing
        of interrupted tasks to its supervisor. Its siblings may have the same tasks queued: a
        task handed to two of them runs once (the claim is atomic), in whichever gets there first.
        A task bound to another runner is left to it, or failed if that runner is gone.
        """
        with self.db.reader() as session:
            pending = task_rows.ids_with_status(session, states.PENDING)
            types = task_rows.types_of(session, pending)
            bound = task_rows.bindings(session, pending)
        for task_id, holder in bound.items():
            if holder != self.owner:
                self._fail_orphaned(task_id)
        return [task_id for task_id in pending
                if is_local(types[task_id]) and bound.get(task_id, self.owner) == self.owner]

    def reap(self, limit: int = 100) -> list[Requeued]:
        """Deal with tasks whose runner was lost: re-queue them, or fail them at the limit.

        Safe on many nodes at once: rows are locked with SKIP LOCKED (on SQLite the write
        lock serialises reapers). Returns the re-queued tasks, to be published again.
        """
        now = models.utcnow()
        requeued: list[Requeued] = []
        lost: list[models.Task] = []
        with self.db.session() as session:
            for row in leases.expired(session, now, limit):
                if row.bound_to is not None and not row.cancel_requested:
                    row.lease_token += 1  # its runner alone could run it, and it is lost
                    self._end(session, row, states.FAILURE, message=ORPHANED)
                    lost.append(row)
                elif row.attempts < row.max_attempts and not row.cancel_requested:
                    states.check(row.status, states.PENDING)
                    leases.requeue(session, row, REQUEUED.format(
                        owner=row.lease_owner, next=row.attempts + 1, limit=row.max_attempts), now)
                    requeued.append(Requeued(row.id, row.type))
                else:
                    message = CANCELLED if row.cancel_requested else LOST.format(
                        attempts=row.attempts)
                    row.lease_token += 1
                    self._end(session, row, states.FAILURE, message=message)
                    lost.append(row)
        for task_type in [item.task_type for item in requeued] + [row.type for row in lost]:
            metrics.LEASE_EXPIRIES.labels(task_type).inc()
        metrics.REAPER_ACTIONS.labels("requeue").inc(len(requeued))
        metrics.REAPER_ACTIONS.labels("fail").inc(len(lost))
        for row in lost:
            LOG.warning("task %s failed: its worker was lost", row.id)
            self._discard_unfinished_image(row)
            self._notify("task.failure", row, notifiers.ERROR)
        for item in requeued:
            LOG.warning("task %s re-queued: its worker was lost", item.task_id)
        return requeued

    def stale_pending(self, older_than: float, limit: int = 100) -> list[Requeued]:
        """Pending tasks untouched for ``older_than`` seconds (their message may be lost).

        Their ``updated_at`` is bumped so the next pass, on any node, waits again. A task bound
        to another runner is not published: it waits for that runner, or fails once it is gone.
        """
        now = models.utcnow()
        found: list[Requeued] = []
        orphans: list[str] = []
        with self.db.session() as session:
            for row in leases.stale_pending(session, now - datetime.timedelta(seconds=older_than),
                                            limit):
                row.updated_at = now
                if row.bound_to is None or row.bound_to == self.owner:
                    found.append(Requeued(row.id, row.type))
                else:
                    orphans.append(row.id)
        for task_id in orphans:
            self._fail_orphaned(task_id)
        return found

    # -- internals -----------------------------------------------------------------------

    def _claim(self, task_id: str) -> tuple[models.Task, leases.Lease] | None:
        with self.db.session() as session:
            claimed = leases.claim_row(session, task_id, self.owner, self.settings.task_lease,
                                       models.utcnow())
        if claimed is None:
            LOG.debug("task %s was not pending (or its lease is held); not running it", task_id)
            return None
        lease, task = claimed
        if task.attempts == 1 and not task.retries:  # its first claim: the wait since creation
            wait = (models.utcnow() - task.created_at).total_seconds()
            metrics.TASK_QUEUE_WAIT.labels(task.type).observe(max(wait, 0.0))
        self._notify("task.processing", task)
        return task, lease

    def _execute(self, task: models.Task, beat: Heartbeat) -> None:
        try:
            script = self.registry.get(task.type)
        except errors.NotFound:
            self._finish(task, beat, states.FAILURE, message=f"Task type '{task.type}' is not installed")
            return
        ctx, api = self._context(task, beat, attempt=task.attempts + task.retries)
        try:
            if script.cleanup is not None and (task.attempts > 1 or task.retries):
                script.cleanup(ctx)
            result = _json_object(script.main(ctx))
        except errors.TransientError as exc:
            if task.retries < self.settings.task_retry_limit and not beat.should_cancel():
                self._retry_later(task, beat, exc)
                return
            self._settle_failure(task, beat, script, ctx, api, exc, task.retries)
            return
        except (Exception, SystemExit) as exc:  # a script's failure ends its task only
            self._settle_failure(task, beat, script, ctx, api, exc, task.retries)
            return
        if not self._finish(task, beat, states.SUCCESS, result=result):
            self._discard_created(api)

    def _retry_later(self, task: models.Task, beat: Heartbeat,
                     exc: errors.TransientError) -> None:
        """Re-queue the task until its backoff has passed, saying so in its message, and have
        it submitted again then. The slot is free meanwhile; its cleanup runs before the
        re-run, wherever that is."""
        retry = task.retries + 1
        delay = min(self.settings.task_retry_backoff * 2 ** (retry - 1),
                    self.settings.task_retry_backoff_max)
        message = (f"Attempt failed with a transient error ({exc.message}); retrying in "
                   f"{delay:g} s (retry {retry} of {self.settings.task_retry_limit})")[:65535]
        beat.stop()
        now = models.utcnow()
        with self.db.session() as session:
            requeued = leases.retry_later(session, beat.lease,
                                          now + datetime.timedelta(seconds=delay), message, now)
        if not requeued:
            LOG.warning("task %s: lease %d lost; its retry was not queued", task.id,
                        beat.lease.token)
            return
        metrics.TASK_RETRIES.labels(task.type).inc()
        LOG.info("task %s: transient error (%s); retry %d in %g s", task.id, exc.message,
                 retry, delay)
        self._submit_later(task.id, task.type, delay)

    def _resubmit_when_due(self, task_id: str) -> None:
        """A task that is waiting out a retry's backoff (its message came early: a duplicate,
        the reaper's, start-up's): submit it again for when it is due."""
        with self.db.reader() as session:
            row = task_rows.get_any(session, task_id)
        now = models.utcnow()
        if (row is not None and row.status == states.PENDING and row.retry_at is not None
                and row.retry_at > now):
            self._submit_later(task_id, row.type, (row.retry_at - now).total_seconds())

    def _submit_later(self, task_id: str, task_type: str, delay: float) -> None:
        if self.resubmit is None:
            return  # pending: the reaper's re-publishing finds it
        try:
            self.resubmit(task_id, task_type, delay)
        except errors.ServiceUnavailable as exc:  # pending: the reaper re-publishes it
            LOG.warning("task %s: could not queue its retry: %s", task_id, exc.message)

    def _settle_failure(self, task: models.Task, beat: Heartbeat, script: LoadedScript,
                        ctx: contract.ScriptContext, api: ScriptDbApi, exc: BaseException,
                        retries: int) -> None:
        if beat.lost.is_set():
            LOG.warning("task %s: lease lost; its run stopped (%s)", task.id, exc)
            self._discard_created(api)
            return
        if beat.cancelled.is_set():
            self._cleanup(script, ctx)
            self._finish(task, beat, states.FAILURE, message=CANCELLED)
            return
        if beat.timed_out.is_set():
            self._cleanup(script, ctx)
            self._finish(task, beat, states.FAILURE,
                         message=TIMED_OUT.format(limit=self.settings.task_time_limit))
            return
        message = _message(task, exc)
        if isinstance(exc, errors.TransientError) and retries:
            message = f"{message} (gave up after {retries} retries)"
        self._finish(task, beat, states.FAILURE, message=message)

    def _cleanup(self, script: LoadedScript, ctx: contract.ScriptContext) -> None:
        if script.cleanup is None:
            return
        try:
            script.cleanup(ctx)
        except Exception:
            LOG.exception("task %s: cleanup of %s failed", ctx.task_id, ctx.task_type)

    def _discard_created(self, api: ScriptDbApi) -> None:
        """A zombie's own images go: the task's new runner makes its own."""
        for image_id in api.created:
            try:
                self.images.discard(RequestContext.admin(), image_id)
            except Exception:
                LOG.exception("could not discard image %s of a lost run", image_id)

    def _context(self, task: models.Task, beat: Heartbeat,
                 attempt: int) -> tuple[contract.ScriptContext, ScriptDbApi]:
        return self.contexts.build(
            task, attempt=attempt, lease=beat.lease, should_cancel=beat.should_cancel,
            report=lambda text, data: beat.renew(message=text, progress=data))

    def _finish(self, task: models.Task, beat: Heartbeat, target: str,
                result: dict[str, Any] | None = None, message: str = "") -> bool:
        """Record the outcome through the lease; False (nothing written) for a zombie.

        The heartbeat stops first: one renewing after this write would call the lease lost.
        """
        states.check(states.PROCESSING, target)
        beat.stop()
        now = models.utcnow()
        with self.db.session() as session:
            done = leases.write(session, beat.lease, status=target, result=result,
                                message=message[:65535], expires_at=self._expiry(now),
                                updated_at=now, lease_expires_at=None)
            row = task_rows.get_any(session, task.id)
            if row is not None:
                session.refresh(row)
        self.handoff.discard(task.id)
        if not done or row is None:
            LOG.warning("task %s: lease %d lost; its %s was not recorded", task.id,
                        beat.lease.token, target)
            return False
        LOG.log(logging.WARNING if target == states.FAILURE else logging.INFO,
                "task ended: %s%s", target, f" ({message})" if message else "")
        self._notify(f"task.{target}", row, notifiers.ERROR if target == states.FAILURE
                     else notifiers.INFO)
        return True

    def _end(self, session: Any, row: models.Task, target: str, message: str) -> None:
        """Set a final status on a row this transaction holds (cancel, reaper, start-up)."""
        states.check(row.status, target)
        now = models.utcnow()
        row.status, row.message, row.result = target, message[:65535], None
        row.expires_at, row.updated_at, row.lease_expires_at = self._expiry(now), now, None
        session.flush()
        self.handoff.discard(row.id)

    def _expiry(self, now: datetime.datetime) -> datetime.datetime:
        return now + datetime.timedelta(hours=self.settings.task_time_to_live)

    def _overrun(self, task_id: str, lease: leases.Lease) -> None:
        """Fail a task whose script ignored its time limit; its thread is left to itself."""
        with self.db.session() as session:
            row = task_rows.get_any(session, task_id)
            if row is None or row.status != states.PROCESSING or row.lease_token != lease.token:
                return
            row.lease_token += 1  # fences off anything the runaway script still writes
            self._end(session, row, states.FAILURE,
                      message=OVERRUN.format(limit=self.settings.task_time_limit))
        self._discard_unfinished_image(row)
        self._notify("task.failure", row, notifiers.ERROR)

    def _fail_interrupted(self, task_id: str, message: str) -> None:
        with self.db.session() as session:
            row = task_rows.get_any(session, task_id)
            # Tasks of this glint serve (this runner's, its API workers') are alive: recovery
            # runs late when the database was down.
            if row is None or row.status != states.PROCESSING or self._same_serve(row.lease_owner):
                return
            row.lease_token += 1
            self._end(session, row, states.FAILURE, message=message)
        self._discard_unfinished_image(row)
        self._notify("task.failure", row, notifiers.ERROR)

    def _fail_orphaned(self, task_id: str) -> None:
        """Fail a pending task bound to another runner if that runner is gone."""
        with self.db.session() as session:
            row = task_rows.get_any(session, task_id)
            if (row is None or row.status != states.PENDING or row.bound_to is None
                    or binding.alive(row.bound_to, row.created_at, models.utcnow())):
                return
            row.lease_token += 1
            self._end(session, row, states.FAILURE, message=ORPHANED)
        LOG.warning("task %s failed: the process it was bound to is gone", task_id)
        self._discard_unfinished_image(row)
        self._notify("task.failure", row, notifiers.ERROR)

    def _same_serve(self, owner: str | None) -> bool:
        return owner is not None and owner.rpartition(":")[2] == self.serve_id

    def _discard_unfinished_image(self, task: models.Task) -> None:
        """Undo what a run that will never finish left behind (worker lost, interrupted).

        A script with a ``cleanup`` hook knows its own work: it is called (unfenced: the task
        is already final, no runner holds it). Without one, the task's image is removed if it
        is not active and the task created it; an image that existed before the task (one it
        was importing into, say) is the user's and is never deleted here.
        """
        if task.type in self.registry:
            script = self.registry.get(task.type)
            if script.cleanup is not None:
                self._abandon(script, task)
                return
        if task.image_id is None:
            return
        with self.db.reader() as session:
            image = image_rows.get_any(session, task.image_id)
            created_by_task = image is not None and image.created_at >= task.created_at
            status = None if image is None or image.deleted else image.status
        if status is not None and status != "active" and created_by_task:
            self.images.discard(RequestContext.admin(), task.image_id)

    def _abandon(self, script: LoadedScript, task: models.Task) -> None:
        ctx, _ = self.contexts.build(task, attempt=task.attempts)
        self._cleanup(script, ctx)

    def _notify(self, event_type: str, task: models.Task, priority: str = notifiers.INFO) -> None:
        """The event of a change just committed; a final status is counted here too (every
        way a task ends comes through, whatever notifications are disabled)."""
        if event_type in ("task.success", "task.failure"):
            metrics.observe_finished(task.type, task.status)
        self.notifier.notify(notifiers.Event(event_type, views.notification(task), priority))


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
