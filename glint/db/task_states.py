"""The task lifecycle: the status names and one transition table, defined here only.

It sits in the database layer, beside the rows and the claim that follow it;
:mod:`glint.tasks.states` names it for the task layer.

::

    pending ──> processing ──> success
       │  <─────────  │  ↺
       └──────────────┴──────> failure

``success`` and ``failure`` are final. ``processing → pending`` is the reaper re-queuing a
task whose runner was lost (its lease expired), or the runner re-queuing one to retry after a
``TransientError``. ``processing → processing`` is a claim of a task whose lease expired
before the reaper got to it: another runner takes it over (a new lease, one more attempt).
A claim takes the statuses that may move to ``processing`` (:data:`CLAIMABLE`; for
``processing`` only with an expired lease, :mod:`glint.db.leases`). Only the runner changes
a task's status.
"""

from __future__ import annotations

from glint import errors

PENDING = "pending"
PROCESSING = "processing"
SUCCESS = "success"
FAILURE = "failure"

STATUSES = (PENDING, PROCESSING, SUCCESS, FAILURE)
FINAL = frozenset({SUCCESS, FAILURE})

TRANSITIONS: dict[str, frozenset[str]] = {
    PENDING: frozenset({PROCESSING, FAILURE}),
    # PROCESSING again: the claim of a task whose lease expired (a new runner takes it over)
    PROCESSING: frozenset({PENDING, PROCESSING, SUCCESS, FAILURE}),
    SUCCESS: frozenset(),
    FAILURE: frozenset(),
}

# What a claim may take: pending, or processing once its lease expired.
CLAIMABLE = frozenset(status for status, targets in TRANSITIONS.items() if PROCESSING in targets)


def check(current: str, target: str) -> None:
    """Raise InvalidTransition unless ``current → target`` is in the table."""
    if target not in TRANSITIONS.get(current, frozenset()):
        raise errors.InvalidTransition(f"task status cannot change from {current} to {target}")
