"""Recovery: tasks whose runner is gone, and what their unfinished runs left.

Three moments find them. At start-up (:meth:`Recovery.recover`), a ``processing`` task this
node ran in-process was cut off by the stop: it fails, and pending ones are submitted again
(:meth:`Recovery.pending`). On every reaper pass (:meth:`Recovery.reap`), a task whose lease
expired is queued again, up to ``task_max_attempts``, or failed; a pending task untouched too
long is published again (:meth:`Recovery.stale_pending`). A task bound to a process that is
gone (:mod:`glint.tasks.binding`) fails, whichever of them finds it. A task whose script ran
past its time limit and did not stop fails too (:meth:`Recovery.overrun`).

A task given up this way may have done part of its work: :meth:`Recovery.undo` removes it,
through the script's ``cleanup`` when it has one.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import logging
import os
import socket
import uuid
from collections.abc import Callable

from glint import metrics
from glint.context import RequestContext
from glint.db import engine, leases, models
from glint.db import images as image_rows
from glint.db import tasks as task_rows
from glint.images import service as images
from glint.images import states as image_states
from glint.scripts import contract
from glint.scripts.registry import LoadedScript, Registry
from glint.settings import Settings
from glint.tasks import binding, states
from glint.tasks.context_factory import ContextFactory
from glint.tasks.endings import CANCELLED, INTERRUPTED, LOST, ORPHANED, OVERRUN, REQUEUED, Endings

LOG = logging.getLogger("glint.tasks.runner")


class Role(enum.Enum):
    """What a process does about the tasks and writes a stopped process left behind.

    One ``glint serve`` process does all of it at start-up. With ``--workers N`` the
    supervisor does the failing, before it starts the API workers, and each API worker only
    resubmits pending tasks; an API worker that dies leaves its queued tasks pending while
    its siblings serve on, so the reaper republishes stale ones as for a remote executor. A
    ``glint worker`` leaves all of it to the reaper: its tasks are the broker's.
    """

    SERVE = "serve"
    SUPERVISOR = "supervisor"
    API_WORKER = "api worker"
    WORKER = "worker"

    @property
    def fails_interrupted(self) -> bool:
        """Fail the in-process tasks a stop cut off, and remove this node's unfinished writes
        and staging residue (no write or task of this node is running yet)."""
        return self in (Role.SERVE, Role.SUPERVISOR)

    @property
    def resumes_pending(self) -> bool:
        """Submit the pending in-process tasks again at start-up."""
        return self in (Role.SERVE, Role.API_WORKER)

    @property
    def republishes(self) -> bool:
        """Republish pending tasks whose message may be lost even with in-process executors."""
        return self is Role.API_WORKER


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


def serve_id(owner: str) -> str:
    """The last part of a lease owner: shared by the processes of one ``glint serve``."""
    return owner.rpartition(":")[2]


def run_cleanup(script: LoadedScript, ctx: contract.ScriptContext) -> None:
    """The script's ``cleanup``, if it has one; its failure is logged, not raised."""
    if script.cleanup is None:
        return
    try:
        script.cleanup(ctx)
    except Exception:
        LOG.exception("task %s: cleanup of %s failed", ctx.task_id, ctx.task_type)


class Recovery:
    def __init__(self, db: engine.Database, registry: Registry,
                 images_service: images.ImageService, settings: Settings, owner: str,
                 endings: Endings, contexts: ContextFactory) -> None:
        self.db = db
        self.registry = registry
        self.images = images_service
        self.settings = settings
        self.owner = owner
        self.endings = endings
        self.contexts = contexts

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
                    # its runner alone could run it, and it is lost
                    self.endings.end(session, row, states.FAILURE, ORPHANED, fence=True)
                    lost.append(row)
                elif row.attempts < row.max_attempts and not row.cancel_requested:
                    states.check(row.status, states.PENDING)
                    leases.requeue(session, row, REQUEUED.format(
                        owner=row.lease_owner, next=row.attempts + 1, limit=row.max_attempts), now)
                    requeued.append(Requeued(row.id, row.type))
                else:
                    message = CANCELLED if row.cancel_requested else LOST.format(
                        attempts=row.attempts)
                    self.endings.end(session, row, states.FAILURE, message, fence=True)
                    lost.append(row)
        for task_type in [item.task_type for item in requeued] + [row.type for row in lost]:
            metrics.LEASE_EXPIRIES.labels(task_type).inc()
        metrics.REAPER_ACTIONS.labels("requeue").inc(len(requeued))
        metrics.REAPER_ACTIONS.labels("fail").inc(len(lost))
        for row in lost:
            LOG.warning("task %s failed: its worker was lost", row.id)
            self.undo(row)
            self.endings.failed(row)
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

    def overrun(self, task_id: str, lease: leases.Lease) -> None:
        """Fail a task whose script ignored its time limit; its thread is left to itself."""
        with self.db.session() as session:
            row = task_rows.get_any(session, task_id)
            if row is None or row.status != states.PROCESSING or row.lease_token != lease.token:
                return
            # the fence: nothing the runaway script still writes lands
            self.endings.end(session, row, states.FAILURE,
                             OVERRUN.format(limit=self.settings.task_time_limit), fence=True)
        self.undo(row)
        self.endings.failed(row)

    def undo(self, task: models.Task) -> None:
        """Undo what a run that will never finish left behind (worker lost, interrupted).

        A script with a ``cleanup`` hook knows its own work: it is called (unfenced: the task
        is already final, no runner holds it). Without one, the task's image is removed if it
        is not active and the task created it; an image that existed before the task (one it
        was importing into, say) is the user's and is never deleted here.
        """
        if task.type in self.registry:
            script = self.registry.get(task.type)
            if script.cleanup is not None:
                ctx, _ = self.contexts.build(task, attempt=task.attempts)
                run_cleanup(script, ctx)
                return
        if task.image_id is None:
            return
        with self.db.reader() as session:
            image = image_rows.get_any(session, task.image_id)
            created_by_task = image is not None and image.created_at >= task.created_at
            status = None if image is None or image.deleted else image.status
        if status is not None and status != image_states.ACTIVE and created_by_task:
            self.images.discard(RequestContext.admin(), task.image_id)

    def _fail_interrupted(self, task_id: str, message: str) -> None:
        with self.db.session() as session:
            row = task_rows.get_any(session, task_id)
            # Tasks of this glint serve (this runner's, its API workers') are alive: recovery
            # runs late when the database was down.
            if row is None or row.status != states.PROCESSING or self._same_serve(row.lease_owner):
                return
            self.endings.end(session, row, states.FAILURE, message, fence=True)
        self.undo(row)
        self.endings.failed(row)

    def _fail_orphaned(self, task_id: str) -> None:
        """Fail a pending task bound to another runner if that runner is gone."""
        with self.db.session() as session:
            row = task_rows.get_any(session, task_id)
            if (row is None or row.status != states.PENDING or row.bound_to is None
                    or binding.alive(row.bound_to, row.created_at, models.utcnow())):
                return
            self.endings.end(session, row, states.FAILURE, ORPHANED, fence=True)
        LOG.warning("task %s failed: the process it was bound to is gone", task_id)
        self.undo(row)
        self.endings.failed(row)

    def _same_serve(self, owner: str | None) -> bool:
        return owner is not None and serve_id(owner) == serve_id(self.owner)
