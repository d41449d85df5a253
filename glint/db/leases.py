"""Task leases in SQL: the claim, its renewal, the fence, and the reaper's queries.

A lease is (owner, token, expiry) on the task row. ``lease_token`` grows by one on every claim
and every re-queue, so a write guarded by ``lease_token = <mine>`` fails for a runner whose
task was handed to another (a *zombie*). Callers own the session (or Core connection) and its
commit.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy import orm

from glint import errors
from glint.db import attempts, models
from glint.db.task_states import PENDING, PROCESSING

Task = models.Task


@dataclasses.dataclass(frozen=True)
class Lease:
    """What a runner holds while it works on a task."""

    task_id: str
    owner: str
    token: int


Writer = models.Writer  # a claim or an end runs in either (Core statements)


def claim(session: Writer, task_id: str, owner: str, seconds: float,
          now: datetime.datetime) -> Lease | None:
    """Take the task: pending, or processing under an expired lease; None when it is taken
    (or bound to another runner, ``glint.tasks.binding``, or waiting out a retry's backoff).

    One conditional UPDATE: of two runners racing for the same task, exactly one matches the
    row (PostgreSQL re-checks the WHERE clause after waiting for the other's row lock).
    """
    claimed = claim_row(session, task_id, owner, seconds, now)
    return None if claimed is None else claimed[0]


def claim_row(writer: Writer, task_id: str, owner: str, seconds: float,
              now: datetime.datetime) -> tuple[Lease, Task] | None:
    """:func:`claim`, also returning the claimed row as the UPDATE left it (detached).

    The row comes back from the UPDATE itself (RETURNING, on SQLite and PostgreSQL alike), so
    a claim is one statement, built once, run through Core (no ORM loading: a task's claim
    and end were half of its runner's CPU through ORM-enabled statements). On PostgreSQL the
    attempt's row is written by the same statement; on SQLite by a second one, in the same
    transaction.
    """
    connection = models.core(writer)
    values = {"task_id": task_id, "new_owner": owner, "now": now,
              "expires": now + datetime.timedelta(seconds=seconds)}
    if connection.dialect.name == "postgresql":  # the claim and its attempt at once
        row = connection.execute(_CLAIM_AND_START, values | {
            "run_worker": owner, "run_now": now}).one_or_none()
        if row is None:
            return None
        task = models.detached(Task, row._mapping)
        return Lease(task_id, owner, task.lease_token), task
    row = connection.execute(_CLAIM, values).one_or_none()
    if row is None:
        return None
    task = models.detached(Task, row._mapping)
    attempts.start(connection, task_id, task.attempts + task.retries, owner, now)
    return Lease(task_id, owner, task.lease_token), task


_TASKS = models.TASKS
_CLAIMABLE = _TASKS.c
_CLAIM = (
    sa.update(_TASKS)
    .where(_CLAIMABLE.id == sa.bindparam("task_id"), _CLAIMABLE.deleted.is_(False),
           _CLAIMABLE.cancel_requested.is_(False),
           _CLAIMABLE.attempts < _CLAIMABLE.max_attempts,
           sa.or_(_CLAIMABLE.bound_to.is_(None), _CLAIMABLE.bound_to == sa.bindparam("new_owner")),
           sa.or_(_CLAIMABLE.retry_at.is_(None), _CLAIMABLE.retry_at <= sa.bindparam("now")),
           sa.or_(_CLAIMABLE.status == PENDING,
                  sa.and_(_CLAIMABLE.status == PROCESSING,
                          _CLAIMABLE.lease_expires_at < sa.bindparam("now"))))
    .values(status=PROCESSING, lease_owner=sa.bindparam("new_owner"),
            lease_token=_CLAIMABLE.lease_token + 1, lease_expires_at=sa.bindparam("expires"),
            attempts=_CLAIMABLE.attempts + 1, updated_at=sa.bindparam("now"))
    .returning(*_TASKS.c))


def _claim_and_start() -> sa.Select[Any]:
    """:data:`_CLAIM` with :func:`attempts.start` in one statement (PostgreSQL: a
    data-modifying CTE), one round trip fewer for every task."""
    claimed = _CLAIM.cte("claimed")
    run = sa.insert(attempts.Attempt).from_select(
        ["task_id", "number", "worker", "started_at", "message"],
        sa.select(claimed.c.id, claimed.c.attempts + claimed.c.retries,
                  sa.bindparam("run_worker", type_=attempts.Attempt.worker.type),
                  sa.bindparam("run_now", type_=attempts.Attempt.started_at.type),
                  sa.literal(""))).cte("run")
    return sa.select(claimed).add_cte(run)


_CLAIM_AND_START = _claim_and_start()


def _held(lease: Lease) -> list[sa.ColumnElement[bool]]:
    return [Task.id == lease.task_id, Task.status == PROCESSING, Task.lease_token == lease.token]


def write(session: orm.Session, lease: Lease, **values: Any) -> bool:
    """Update the task only while ``lease`` is held; False for a zombie."""
    values.setdefault("updated_at", models.utcnow())
    result = session.execute(sa.update(Task).where(*_held(lease)).values(**values)
                             .execution_options(synchronize_session=False))
    return bool(result.rowcount)  # type: ignore[attr-defined]


def write_row(writer: Writer, lease: Lease, **values: Any) -> Task | None:
    """:func:`write` of plain values, returning the row as the UPDATE left it (RETURNING: one
    statement, built once for each set of columns; detached); None for a zombie."""
    values.setdefault("updated_at", models.utcnow())
    row = models.core(writer).execute(_write_row(tuple(sorted(values))),
                                      _write_params(lease, values)).one_or_none()
    return None if row is None else models.detached(Task, row._mapping)


def end_run(writer: Writer, lease: Lease, values: dict[str, Any], outcome: str,
            message: str, now: datetime.datetime) -> Task | None:
    """:func:`write_row` of ``values``, and the run's attempt closed with ``outcome`` and
    ``message`` (:func:`attempts.end`): in one statement on PostgreSQL (a data-modifying CTE),
    two on SQLite. None for a zombie, whose attempt is left to whoever holds the task."""
    connection = models.core(writer)
    values = {"updated_at": now, **values}
    columns = tuple(sorted(values))
    params = _write_params(lease, values)
    if connection.dialect.name == "postgresql":
        row = connection.execute(_end_run(columns), params | {
            "run_now": now, "run_outcome": outcome,
            "run_message": message[:attempts.MESSAGE_LIMIT]}).one_or_none()
        return None if row is None else models.detached(Task, row._mapping)
    row = connection.execute(_write_row(columns), params).one_or_none()
    if row is None:
        return None
    attempts.end(connection, lease.task_id, outcome, message, now)
    return models.detached(Task, row._mapping)


def _write_params(lease: Lease, values: dict[str, Any]) -> dict[str, Any]:
    return {"held_task": lease.task_id, "held_token": lease.token,
            **{f"set_{column}": value for column, value in values.items()}}


@functools.lru_cache(maxsize=16)
def _write_row(columns: tuple[str, ...]) -> sa.Update:
    table = _TASKS.c
    return (sa.update(_TASKS)
            .where(table.id == sa.bindparam("held_task"), table.status == PROCESSING,
                   table.lease_token == sa.bindparam("held_token"))
            .values({column: sa.bindparam(f"set_{column}", type_=table[column].type)
                     for column in columns})
            .returning(*_TASKS.c))


@functools.lru_cache(maxsize=16)
def _end_run(columns: tuple[str, ...]) -> sa.Select[Any]:
    ended = _write_row(columns).cte("ended")
    attempt = attempts.Attempt
    run = (sa.update(attempt)
           .where(attempt.task_id == ended.c.id, attempt.ended_at.is_(None))
           .values(ended_at=sa.bindparam("run_now", type_=attempt.ended_at.type),
                   outcome=sa.bindparam("run_outcome", type_=attempt.outcome.type),
                   message=sa.bindparam("run_message", type_=attempt.message.type))
           .cte("run"))
    return sa.select(ended).add_cte(run)


def renew(session: orm.Session, lease: Lease, seconds: float, now: datetime.datetime,
          **values: Any) -> bool:
    """Push the lease's expiry ``seconds`` past ``now`` (with ``values``); False when lost."""
    return write(session, lease, lease_expires_at=now + datetime.timedelta(seconds=seconds),
                 updated_at=now, **values)


def retry_later(session: orm.Session, lease: Lease, at: datetime.datetime, message: str,
                now: datetime.datetime) -> bool:
    """processing → pending, claimable from ``at``: a retry after a TransientError, re-queued
    rather than waited for in the runner's slot. The run is not counted as an attempt (those
    count lost runners) but as a retry; the token moves on, as for any re-queue. False for a
    zombie."""
    attempts.end(session, lease.task_id, attempts.RETRY, message, now)
    return write(session, lease, status=PENDING, lease_owner=None, lease_expires_at=None,
                 lease_token=Task.lease_token + 1, attempts=Task.attempts - 1,
                 retries=Task.retries + 1, retry_at=at, message=message, updated_at=now)


def hold(session: orm.Session, lease: Lease) -> None:
    """Lock the task row for this transaction, or raise LeaseLost: the fence for a commit.

    While the lock is held nobody can re-queue or re-claim the task, so whatever else the
    transaction writes (an image's activation) lands only if the lease is still ours.
    """
    locked = session.scalar(sa.select(Task.id).where(*_held(lease)).with_for_update())
    if locked is None:
        raise errors.LeaseLost(f"Task {lease.task_id} is no longer held by {lease.owner} "
                               f"(lease {lease.token}); the write was refused")


def cancel_requested(session: orm.Session, task_id: str) -> bool:
    return bool(session.scalar(sa.select(Task.cancel_requested).where(Task.id == task_id)))


def request_cancel(session: orm.Session, task_id: str) -> bool:
    """Flag an unfinished task for cancellation; False when it is already final."""
    result = session.execute(
        sa.update(Task).where(Task.id == task_id, Task.status.in_((PENDING, PROCESSING)))
        .values(cancel_requested=True).execution_options(synchronize_session=False))
    return bool(result.rowcount)  # type: ignore[attr-defined]


def expired(session: orm.Session, now: datetime.datetime, limit: int) -> Sequence[Task]:
    """Processing tasks whose lease ran out, locked; rows another reaper holds are skipped."""
    return session.scalars(
        sa.select(Task).where(Task.status == PROCESSING, Task.lease_expires_at < now)
        .order_by(Task.lease_expires_at).limit(limit)
        .with_for_update(skip_locked=True)).all()


def stale_pending(session: orm.Session, before: datetime.datetime,
                  limit: int) -> Sequence[Task]:
    """Pending tasks not touched since ``before``, locked as :func:`expired` does."""
    return session.scalars(
        sa.select(Task).where(Task.status == PENDING, Task.deleted.is_(False),
                              Task.updated_at < before)
        .order_by(Task.updated_at).limit(limit)
        .with_for_update(skip_locked=True)).all()


def requeue(session: orm.Session, task: Task, message: str, now: datetime.datetime) -> None:
    """processing → pending under a new token: the lost runner's lease is void from here."""
    attempts.end(session, task.id, attempts.LOST, message, now)
    task.status = PENDING
    task.lease_owner = None
    task.lease_expires_at = None
    task.lease_token = task.lease_token + 1
    task.message = message
    task.updated_at = now
