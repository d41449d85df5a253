"""``GET /v2/images`` parameters → :class:`glint.db.images.ImageQuery` (Glance's rules).

Base columns take ``eq`` (``name``, ``id``, ``status`` and the formats also ``in:"a","b"``),
``created_at``/``updated_at`` take ``gt|gte|lt|lte|eq|neq:<ISO 8601>``, ``size_min``/``size_max``
bound the size, ``tag`` repeats (all must match), and any other key filters on an extra property.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterator

from starlette.datastructures import QueryParams

from glint import errors
from glint.api import params
from glint.db import images as image_rows
from glint.settings import Settings

VISIBILITIES = ("community", "public", "private", "shared", "all")
MEMBER_STATUSES = ("pending", "accepted", "rejected", "all")
LIST_COLUMNS = frozenset({"name", "id", "status", "container_format", "disk_format"})
TIME_COLUMNS = frozenset({"created_at", "updated_at"})
TIME_OPERATORS = frozenset({"gt", "gte", "lt", "lte", "eq", "neq"})
OWN_PARAMS = frozenset({"limit", "marker", "sort", "sort_key", "sort_dir", "member_status",
                        "visibility", "tag", "os_hidden", "protected", "size_min", "size_max"})
EQUAL_COLUMNS = frozenset(image_rows.FILTER_COLUMNS) - LIST_COLUMNS - TIME_COLUMNS - OWN_PARAMS
_QUOTED_ITEMS = re.compile(r'"([^"\\]*(?:\\.[^"\\]*)*)",?|([^,]+),?|,')


def parse(query: QueryParams, settings: Settings) -> image_rows.ImageQuery:
    params.check(query)
    if "changes-since" in query:
        raise errors.BadRequest('The "changes-since" filter is no longer available on v2.')
    visibility = query.get("visibility")
    return image_rows.ImageQuery(
        limit=params.limit(query, settings),
        marker=params.marker(query),
        sort=sorting(query),
        visibility=None if visibility is None else params.one_of("visibility", visibility,
                                                                 VISIBILITIES),
        member_status=params.one_of("member_status", query.get("member_status", "accepted"),
                                    MEMBER_STATUSES),
        comparisons=tuple(comparisons(query)),
        tags=tuple(tag.strip() for tag in query.getlist("tag")),
        properties=tuple((k, v) for k, v in query.items()
                         if k not in OWN_PARAMS and k not in image_rows.FILTER_COLUMNS),
    )


def sorting(query: QueryParams) -> tuple[tuple[str, str], ...]:
    """``sort=k:dir,...`` or repeated ``sort_key``/``sort_dir`` (not both), validated."""
    if "sort" in query:
        if "sort_key" in query or "sort_dir" in query:
            raise errors.BadRequest("Old and new sorting syntax cannot be combined")
        pairs = [part.partition(":") for part in query["sort"].strip().split(",")]
        return tuple((_sort_key(key), _sort_dir(direction or "desc"))
                     for key, _sep, direction in pairs)
    keys = [_sort_key(key) for key in query.getlist("sort_key")] or ["created_at"]
    dirs = [_sort_dir(direction) for direction in query.getlist("sort_dir")] or ["desc"]
    if len(dirs) == 1:
        dirs *= len(keys)
    elif len(dirs) != len(keys):
        raise errors.BadRequest("Number of sort dirs does not match the number of sort keys")
    return tuple(zip(keys, dirs, strict=True))


def _sort_key(key: str) -> str:
    return params.one_of("sort key", key.strip(), sorted(image_rows.SORT_KEYS))


def _sort_dir(direction: str) -> str:
    return params.one_of("sort direction", direction.strip(), ("asc", "desc"))


def comparisons(query: QueryParams) -> Iterator[image_rows.Comparison]:
    Comparison = image_rows.Comparison
    yield Comparison("os_hidden", "eq", params.boolean("os_hidden",
                                                       query.get("os_hidden", "false")))
    if "protected" in query:
        yield Comparison("protected", "eq", params.boolean("protected", query["protected"]))
    for name, op in (("size_min", "gte"), ("size_max", "lte")):
        if name in query:
            yield Comparison("size", op, params.integer(name, query[name]))
    for key, value in query.items():
        if key in LIST_COLUMNS:
            yield _listed(key, value)
        elif key in TIME_COLUMNS:
            yield _timed(key, value)
        elif key in EQUAL_COLUMNS:
            yield _equal(key, value)


def _listed(key: str, expression: str) -> image_rows.Comparison:
    op, value = split_operator(expression)
    if op == "in":
        return image_rows.Comparison(key, "in", tuple(split_quoted(value)))
    if op == "eq":
        return image_rows.Comparison(key, "eq", value)
    raise errors.BadRequest(f"Unable to filter by unknown operator '{op[:32]}'.")


def _timed(key: str, expression: str) -> image_rows.Comparison:
    op, value = split_operator(expression)
    if op not in TIME_OPERATORS:
        raise errors.BadRequest(f"Unable to filter by unknown operator '{op[:32]}'.")
    try:
        moment = datetime.datetime.fromisoformat(value)
        if moment.tzinfo is not None:
            moment = moment.astimezone(datetime.UTC).replace(tzinfo=None)
    except (ValueError, OverflowError):
        raise errors.BadRequest(f'Bad "{key}" query filter format. '
                                "Use ISO 8601 DateTime notation.") from None
    return image_rows.Comparison(key, op, moment)


def _equal(key: str, value: str) -> image_rows.Comparison:
    kind = image_rows.FILTER_COLUMNS[key]
    return image_rows.Comparison(key, "eq", params.integer(key, value) if kind is int else value)


def split_operator(expression: str) -> tuple[str, str]:
    """``op:value`` → (op, value); a bare value, or a bare ISO time, is ``eq``."""
    op, sep, value = expression.partition(":")
    if not sep:
        return "eq", expression
    if op in TIME_OPERATORS or op == "in" or not _is_isotime(expression):
        return op, value
    return "eq", expression


def _is_isotime(value: str) -> bool:
    try:
        datetime.datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


def split_quoted(value: str) -> list[str]:
    """``a,"b,c",d`` → ``["a", "b,c", "d"]`` (the API working group's ``in:`` syntax)."""
    _check_quotes(value)
    return [quoted or bare for quoted, bare in _QUOTED_ITEMS.findall(value)]


def _check_quotes(value: str) -> None:
    inside = False
    for i, char in enumerate(value):
        if char != '"' or (i and value[i - 1] == "\\"):
            continue
        if not inside and i and value[i - 1] != ",":
            raise errors.BadRequest(f"Invalid filter value {value[:64]}. "
                                    "There is no comma before opening quotation mark.")
        if inside and i + 1 != len(value) and value[i + 1] != ",":
            raise errors.BadRequest(f"Invalid filter value {value[:64]}. "
                                    "There is no comma after closing quotation mark.")
        inside = not inside
    if inside:
        raise errors.BadRequest(f"Invalid filter value {value[:64]}. The quote is not closed.")
