"""Task attempts in SQL: one row per run of a task (:class:`glint.db.models.TaskAttempt`).

:func:`glint.db.leases.claim_row` opens a row in the claim's transaction; whoever ends the
run closes it in the transaction that records the ending (the runner, a retry, the reaper).
Callers own the session and its commit.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy import orm

from glint.db import models

Attempt = models.TaskAttempt
RETRY, LOST = "retry", "lost"  # outcomes of a run that did not end the task
MESSAGE_LIMIT = 65535  # the message column's size

_ATTEMPTS: sa.Table = Attempt.__table__  # type: ignore[assignment]
_START = sa.insert(_ATTEMPTS).values(
    task_id=sa.bindparam("run_task"), number=sa.bindparam("run_number"),
    worker=sa.bindparam("run_worker"), started_at=sa.bindparam("run_now"), message="")

_END = (sa.update(_ATTEMPTS)
        .where(_ATTEMPTS.c.task_id == sa.bindparam("run_task"), _ATTEMPTS.c.ended_at.is_(None))
        .values(ended_at=sa.bindparam("run_now"), outcome=sa.bindparam("run_outcome"),
                message=sa.bindparam("run_message")))


def start(writer: models.Writer, task_id: str, number: int, worker: str,
          now: datetime.datetime) -> None:
    """Open run ``number`` of the task, by ``worker``."""
    models.core(writer).execute(_START, {"run_task": task_id, "run_number": number,
                                         "run_worker": worker, "run_now": now})


def end(writer: models.Writer, task_id: str, outcome: str, message: str,
        now: datetime.datetime) -> None:
    """Close the task's open run (if any) with ``outcome`` and ``message``."""
    models.core(writer).execute(_END, {"run_task": task_id, "run_outcome": outcome,
                                       "run_message": message[:MESSAGE_LIMIT], "run_now": now})


def of(session: orm.Session, task_id: str) -> Sequence[Attempt]:
    """The task's runs, first first."""
    return session.scalars(sa.select(Attempt).where(Attempt.task_id == task_id)
                           .order_by(Attempt.number, Attempt.id)).all()


def purge(session: orm.Session, task_ids: sa.Select[Any]) -> None:
    """Remove the runs of the tasks ``task_ids`` selects (before the tasks go)."""
    session.execute(sa.delete(Attempt).where(Attempt.task_id.in_(task_ids))
                    .execution_options(synchronize_session=False))
