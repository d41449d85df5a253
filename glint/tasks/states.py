"""The task lifecycle as the task layer reads it.

The status names and the transition table are defined once, in :mod:`glint.db.task_states`,
beside the rows and the claim that follow them; this module names them for the task layer.
"""

from __future__ import annotations

from glint.db.task_states import (
    CLAIMABLE,
    FAILURE,
    FINAL,
    PENDING,
    PROCESSING,
    STATUSES,
    SUCCESS,
    TRANSITIONS,
    check,
)

__all__ = ["CLAIMABLE", "FAILURE", "FINAL", "PENDING", "PROCESSING", "STATUSES", "SUCCESS",
           "TRANSITIONS", "check"]
