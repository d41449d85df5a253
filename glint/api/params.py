"""Query-string and path parsing shared by the list and show endpoints.

Everything here turns a malformed value into a 400 (or 404 for ids in paths) naming the
parameter, so no request reaches the database with a value it cannot take.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from urllib.parse import urlencode

from starlette.datastructures import QueryParams

from glint import digits, errors
from glint.settings import Settings

INT64 = 2**63


def check(params: QueryParams) -> None:
    """Refuse NUL characters anywhere in the query string (PostgreSQL cannot compare them)."""
    for key, value in params.multi_items():
        if "\x00" in key or "\x00" in value:
            raise errors.BadRequest("Query parameters must not contain NUL characters")


def limit(params: QueryParams, settings: Settings) -> int:
    """``limit``: an integer >= 0, default ``limit_param_default``, capped at ``api_limit_max``."""
    raw = params.get("limit")
    if raw is None:
        return min(settings.limit_param_default, settings.api_limit_max)
    value = digits.parse(raw, signed=True)
    if value is None:
        raise errors.BadRequest("limit param must be an integer")
    if value < 0:
        raise errors.BadRequest("limit param must be positive")
    return min(value, settings.api_limit_max)


def marker(params: QueryParams) -> str | None:
    raw = params.get("marker")
    if not raw:
        return None
    try:
        return canonical_uuid(raw)
    except ValueError:
        raise errors.BadRequest(f"Invalid marker format: {raw[:64]!r} is not a UUID") from None


def one_of(name: str, value: str, choices: Collection[str]) -> str:
    if value not in choices:
        raise errors.BadRequest(f"Invalid {name} value: {value[:64]!r}. "
                                f"It must be one of: {', '.join(choices)}")
    return value


def boolean(name: str, value: str) -> bool:
    lowered = value.lower()
    if lowered not in ("true", "false"):
        raise errors.BadRequest(f"Invalid value {value[:64]!r} for '{name}' filter. "
                                "Valid values are 'true' or 'false'.")
    return lowered == "true"


def integer(name: str, value: str) -> int:
    """A signed integer in ASCII digits, within 64 bits (400 naming ``name`` otherwise)."""
    number = digits.parse(value, signed=True)
    if number is None:
        raise errors.BadRequest(f"Invalid value {value[:64]!r} for '{name}': "
                                "must be an integer")
    if not -INT64 <= number < INT64:
        raise errors.BadRequest(f"Invalid value for '{name}': out of range")
    return number


def canonical_uuid(value: str) -> str:
    """``value`` as a lowercase, dashed UUID; ValueError when it is not one."""
    if len(value) > 45:  # the longest form uuid.UUID accepts: urn:uuid:<36>
        raise ValueError(value)
    return str(uuid.UUID(value))


def path_id(value: str, not_found: str) -> str:
    """A resource id from a path: canonical UUID, or NotFound (Glance: 404 for non-UUIDs)."""
    try:
        return canonical_uuid(value)
    except ValueError:
        raise errors.NotFound(not_found) from None


def page_links(path: str, params: QueryParams, next_marker: str | None) -> dict[str, str]:
    """``first`` (the request without ``marker``) and, for a full page, ``next``."""
    items = [(k, v) for k, v in params.multi_items() if k != "marker"]
    links = {"first": f"{path}?{urlencode(items)}" if items else path}
    if next_marker is not None:
        links["next"] = f"{path}?{urlencode([*items, ('marker', next_marker)])}"
    return links


def next_marker(ids: list[str], limit: int) -> str | None:
    """The last id of a full, non-empty page: there may be more."""
    return ids[-1] if ids and len(ids) == limit else None
