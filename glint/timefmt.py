"""Times as Glance writes them."""

from __future__ import annotations

import datetime


def isotime(value: datetime.datetime | None) -> str | None:
    """``YYYY-MM-DDTHH:MM:SSZ`` (no fractions), as Glance's API emits."""
    if value is None:
        return None
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def rawtime(value: datetime.datetime | None) -> str | None:
    """``YYYY-MM-DDTHH:MM:SS.ffffff`` (Glance's raw DB serialisation, used by image tasks)."""
    if value is None:
        return None
    return value.strftime("%Y-%m-%dT%H:%M:%S.%f")
