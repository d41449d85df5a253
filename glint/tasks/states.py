"""The task lifecycle: one transition table.

::

    pending ──> processing ──> success
       │  <─────────  │
       └──────────────┴──────> failure

``success`` and ``failure`` are final. ``processing → pending`` is the reaper re-queuing a
task whose runner was lost (its lease expired), or the runner re-queuing one to retry after a
``TransientError``. Only the runner changes a task's status.
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
    PROCESSING: frozenset({PENDING, SUCCESS, FAILURE}),
    SUCCESS: frozenset(),
    FAILURE: frozenset(),
}


def check(current: str, target: str) -> None:
    """Raise InvalidTransition unless ``current → target`` is in the table."""
    if target not in TRANSITIONS.get(current, frozenset()):
        raise errors.InvalidTransition(f"task status cannot change from {current} to {target}")
