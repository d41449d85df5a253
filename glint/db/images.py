"""Image rows: visibility rules, lookups and the list query. Callers own the session and commit."""

from __future__ import annotations

import dataclasses
import datetime
import operator
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy import orm

from glint import errors
from glint.context import RequestContext
from glint.db import models


def visible(ctx: RequestContext) -> sa.ColumnElement[bool]:
    """Glance's rule: admins see all; others their own, public, community, and shared-with-them."""
    if ctx.is_admin:
        return sa.true()
    member_of = sa.select(models.ImageMember.image_id).where(
        models.ImageMember.member == ctx.project_id, models.ImageMember.deleted.is_(False))
    return sa.or_(
        models.Image.owner == ctx.project_id,
        models.Image.visibility.in_(("public", "community")),
        sa.and_(models.Image.visibility == "shared", models.Image.id.in_(member_of)),
    )


def get(session: orm.Session, ctx: RequestContext, image_id: str,
        for_update: bool = False) -> models.Image:
    """The image if ``ctx`` may see it; NotFound (never Forbidden) otherwise."""
    stmt = sa.select(models.Image).where(
        models.Image.id == image_id, models.Image.deleted.is_(False), visible(ctx))
    if for_update:
        stmt = stmt.with_for_update()
    image = session.scalars(stmt).one_or_none()
    if image is None:
        raise errors.NotFound(f"No image found with ID {image_id}")
    return image


def get_any(session: orm.Session, image_id: str) -> models.Image | None:
    return session.get(models.Image, image_id)


def add(session: orm.Session, image: models.Image) -> None:
    session.add(image)
    session.flush()


# -- listing -------------------------------------------------------------------------------

SORT_KEYS = frozenset({"name", "status", "container_format", "disk_format", "size", "id",
                       "created_at", "updated_at"})
# Base columns a list may filter on, and the Python type of their values. ``location`` is
# deliberately absent: it is never shown, so it must not be guessable through a filter either.
FILTER_COLUMNS: dict[str, type] = {
    "id": str, "name": str, "status": str, "container_format": str, "disk_format": str,
    "owner": str, "checksum": str, "os_hash_algo": str, "os_hash_value": str,
    "size": int, "virtual_size": int, "min_ram": int, "min_disk": int,
    "protected": bool, "os_hidden": bool,
    "created_at": datetime.datetime, "updated_at": datetime.datetime,
}
_OPERATORS = {"eq": operator.eq, "neq": operator.ne, "gt": operator.gt, "gte": operator.ge,
              "lt": operator.lt, "lte": operator.le}
OPERATORS = frozenset({*_OPERATORS, "in"})


@dataclasses.dataclass(frozen=True)
class Comparison:
    """``column <op> value`` on a base column; ``in`` takes a tuple of values."""

    column: str
    op: str
    value: Any


@dataclasses.dataclass(frozen=True)
class ImageQuery:
    """A validated list request (Glance's ``image_get_all`` arguments, typed)."""

    limit: int
    marker: str | None = None
    sort: tuple[tuple[str, str], ...] = (("created_at", "desc"),)
    visibility: str | None = None  # None: Glance's default rule; "all": no visibility filter
    member_status: str = "accepted"
    comparisons: tuple[Comparison, ...] = ()
    tags: tuple[str, ...] = ()
    properties: tuple[tuple[str, str], ...] = ()


def list_(session: orm.Session, ctx: RequestContext, query: ImageQuery) -> Sequence[models.Image]:
    """One page of the images ``ctx`` may list, in ``query.sort`` order after ``query.marker``."""
    clauses = [*_listable(ctx, query), *_conditions(query)]
    order = _sort_keys(query.sort)
    stmt = sa.select(models.Image).where(*clauses)
    if query.marker is not None:
        stmt = stmt.where(_after_marker(session, ctx, query.marker, order))
    stmt = stmt.order_by(*_order_by(order)).limit(query.limit)
    return session.scalars(stmt).all()


def _listable(ctx: RequestContext, query: ImageQuery) -> list[sa.ColumnElement[bool]]:
    """Glance's list rule: visible images, minus killed ones and others' community images."""
    clauses = [models.Image.deleted.is_(False), models.Image.status != "killed"]
    if not ctx.is_admin:
        clauses.append(_member_visible(ctx, query.member_status))
    if query.visibility is None:
        not_community = models.Image.visibility != "community"
        clauses.append(not_community if ctx.owner is None
                       else sa.or_(models.Image.owner == ctx.owner, not_community))
    elif query.visibility != "all":
        clauses.append(models.Image.visibility == query.visibility)
    return clauses


def _member_visible(ctx: RequestContext, member_status: str) -> sa.ColumnElement[bool]:
    members = sa.select(models.ImageMember.image_id).where(
        models.ImageMember.member == ctx.owner, models.ImageMember.deleted.is_(False))
    if member_status != "all":
        members = members.where(models.ImageMember.status == member_status)
    rules = [models.Image.visibility.in_(("public", "community")),
             sa.and_(models.Image.visibility == "shared", models.Image.id.in_(members))]
    if ctx.owner is not None:
        rules.append(models.Image.owner == ctx.owner)
    return sa.or_(*rules)


def _conditions(query: ImageQuery) -> list[sa.ColumnElement[bool]]:
    clauses = [_compare(c) for c in query.comparisons]
    for tag in query.tags:
        clauses.append(models.Image.id.in_(sa.select(models.ImageTag.image_id).where(
            models.ImageTag.value == tag)))
    for name, value in query.properties:
        clauses.append(models.Image.id.in_(sa.select(models.ImageProperty.image_id).where(
            models.ImageProperty.name == name, models.ImageProperty.value == value)))
    return clauses


def _compare(comparison: Comparison) -> sa.ColumnElement[bool]:
    if comparison.column not in FILTER_COLUMNS or comparison.op not in OPERATORS:
        raise errors.BadRequest(f"Unable to filter on {comparison.column!r} "
                                f"with operator {comparison.op!r}")
    column = getattr(models.Image, comparison.column)
    if comparison.op == "in":
        return column.in_(tuple(comparison.value))  # type: ignore[no-any-return]
    return _OPERATORS[comparison.op](column, comparison.value)  # type: ignore[no-any-return]


def _sort_keys(sort: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """``sort`` plus Glance's tiebreakers (``created_at``, ``id``), so the order is total."""
    keys = list(sort)
    directions = {direction for _key, direction in keys}
    tiebreak = keys[0][1] if len(directions) == 1 else "desc"
    names = {key for key, _direction in keys}
    keys += [(key, tiebreak) for key in ("created_at", "id") if key not in names]
    return keys


def _order_by(keys: Sequence[tuple[str, str]]) -> list[sa.UnaryExpression[Any]]:
    # NULLs sort as the smallest value on every database (keyset paging relies on it).
    return [getattr(models.Image, key).desc().nulls_last() if direction == "desc"
            else getattr(models.Image, key).asc().nulls_first() for key, direction in keys]


def _after_marker(session: orm.Session, ctx: RequestContext, marker_id: str,
                  keys: Sequence[tuple[str, str]]) -> sa.ColumnElement[bool]:
    marker = session.scalars(sa.select(models.Image).where(
        models.Image.id == marker_id, models.Image.deleted.is_(False), visible(ctx))
    ).one_or_none()
    if marker is None:
        raise errors.BadRequest(f"Invalid marker: image {marker_id} could not be found")
    clauses = []
    for i, (key, direction) in enumerate(keys):
        equal = [_same(k, getattr(marker, k)) for k, _d in keys[:i]]
        clauses.append(sa.and_(*equal, _beyond(key, getattr(marker, key), direction)))
    return sa.or_(*clauses)


def _same(key: str, value: Any) -> sa.ColumnElement[bool]:
    column = getattr(models.Image, key)
    return column.is_(None) if value is None else column == value  # type: ignore[no-any-return]


def _beyond(key: str, value: Any, direction: str) -> sa.ColumnElement[bool]:
    """Rows after ``value`` in ``direction``, NULLs counting as the smallest value."""
    column = getattr(models.Image, key)
    if direction == "asc":
        return column.is_not(None) if value is None else column > value  # type: ignore[no-any-return]
    if value is None:
        return sa.false()
    return sa.or_(column < value, column.is_(None))
