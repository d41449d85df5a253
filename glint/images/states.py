"""The image lifecycle, as Glance defines it (``glance/domain``: ``valid_state_targets``)."""

from __future__ import annotations

from glint import errors

QUEUED = "queued"
SAVING = "saving"
UPLOADING = "uploading"
IMPORTING = "importing"
ACTIVE = "active"
KILLED = "killed"
PENDING_DELETE = "pending_delete"
DEACTIVATED = "deactivated"
DELETED = "deleted"

STATUSES = (QUEUED, SAVING, ACTIVE, KILLED, DELETED, PENDING_DELETE, DEACTIVATED, UPLOADING,
            IMPORTING)

TRANSITIONS: dict[str, frozenset[str]] = {
    QUEUED: frozenset({SAVING, UPLOADING, IMPORTING, ACTIVE, DELETED}),
    SAVING: frozenset({ACTIVE, KILLED, DELETED, QUEUED}),
    UPLOADING: frozenset({IMPORTING, QUEUED, DELETED}),
    IMPORTING: frozenset({ACTIVE, DELETED, QUEUED}),
    ACTIVE: frozenset({PENDING_DELETE, DELETED, DEACTIVATED}),
    KILLED: frozenset({DELETED}),
    PENDING_DELETE: frozenset({DELETED, ACTIVE}),
    DEACTIVATED: frozenset({ACTIVE, DELETED}),
    DELETED: frozenset(),
}

# Leaving these for a data-bearing status needs disk_format and container_format.
NEEDS_FORMATS_FROM = frozenset({QUEUED, UPLOADING})
NEEDS_FORMATS_TO = frozenset({SAVING, ACTIVE, IMPORTING})


def check(current: str, target: str) -> None:
    if target not in TRANSITIONS.get(current, frozenset()):
        raise errors.InvalidTransition(f"image status cannot change from {current} to {target}")
