"""What a metadef name may be: it must be usable as one segment of a URL path."""

from __future__ import annotations

from glint import errors

MAX_LENGTH = 80


def check(value: str, what: str) -> str:
    """``value`` when it can name a ``what`` (a namespace, object, ...), else BadRequest."""
    if not value.strip():
        raise errors.BadRequest(f"A {what} name must not be empty.")
    if len(value) > MAX_LENGTH:
        raise errors.BadRequest(f"A {what} name is at most {MAX_LENGTH} characters.")
    if "/" in value or not value.isprintable():
        raise errors.BadRequest(f"A {what} name must be printable and contain no '/'.")
    return value


def unique(values: list[str], what: str) -> list[str]:
    """``values`` when no name repeats; Conflict naming the first that does."""
    seen: set[str] = set()
    for value in values:
        if value in seen:
            raise errors.Conflict(f"Duplicate {what} {value!r} in the request.")
        seen.add(value)
    return values
