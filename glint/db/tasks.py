"""Task rows: queries and conditional updates. Callers own the session and its commit."""

from __future__ import annotations

import dataclasses
import datetime
import functools
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy import orm

from glint import errors
from glint.context import RequestContext
from glint.db import attempts, models

SORT_KEYS = frozenset({"id", "type", "status", "owner", "created_at", "updated_at",
                       "expires_at", "image_id", "user_id", "request_id"})


@dataclasses.dataclass(frozen=True)
class TaskQuery:
    """A validated list request."""

    limit: int
    marker: str | None = None
    sort_key: str = "created_at"
    sort_dir: str = "desc"
    filters: dict[str, str] = dataclasses.field(default_factory=dict)


# What a list item shows (``views.stub``): not ``input``, ``result`` and ``context``, the JSON
# columns that are most of a row's bytes and of its decoding time.
SUMMARY_COLUMNS = (models.Task.id, models.Task.type, models.Task.status, models.Task.owner,
                   models.Task.created_at, models.Task.updated_at, models.Task.expires_at)


def _visible(admin: bool) -> list[sa.ColumnElement[bool]]:
    """What a caller may see; the values are bound at execution (:func:`_visible_params`)."""
    clauses: list[sa.ColumnElement[bool]] = [
        models.Task.deleted.is_(False),
        sa.or_(models.Task.expires_at.is_(None),
               models.Task.expires_at > sa.bindparam("visible_now")),
    ]
    if not admin:
        clauses.append(models.Task.owner == sa.bindparam("visible_owner"))
    return clauses


def _visible_params(ctx: RequestContext, now: datetime.datetime) -> dict[str, Any]:
    return {"visible_now": now, "visible_owner": ctx.owner}


# The API's statements are built once per shape and executed with bound values: building and
# compiling-cache-keying a statement costs as much CPU as SQLite spends running it.
@functools.cache
def _one(admin: bool) -> sa.Select[models.Task]:
    return sa.select(models.Task).where(models.Task.id == sa.bindparam("task_id"),
                                        *_visible(admin))


@functools.lru_cache(maxsize=256)
def _page(admin: bool, filter_keys: tuple[str, ...], sort_key: str,
          sort_dir: str) -> sa.Select[*tuple[Any, ...]]:
    clauses = _visible(admin) + [getattr(models.Task, key) == sa.bindparam(f"filter_{key}")
                                 for key in filter_keys]
    return (sa.select(*SUMMARY_COLUMNS).where(*clauses).order_by(*_order(sort_key, sort_dir))
            .limit(sa.bindparam("page_limit", type_=sa.Integer)))


def get(session: orm.Session, ctx: RequestContext, task_id: str) -> models.Task:
    """The task, if ``ctx`` may see it and it has not expired; NotFound otherwise."""
    task = session.scalars(_one(ctx.is_admin), {
        "task_id": task_id, **_visible_params(ctx, models.utcnow())}).one_or_none()
    if task is None:
        raise errors.NotFound(f"Task with identifier {task_id} not found")
    return task


def find(session: orm.Session, filters: dict[str, str], created_before: datetime.datetime | None,
         limit: int) -> Sequence[models.Task]:
    """For operators (``glint task list``): tasks not deleted, expired ones too, newest first,
    whose columns equal ``filters`` (``status``, ``type``, ``owner``)."""
    stmt = sa.select(models.Task).where(
        models.Task.deleted.is_(False),
        *(getattr(models.Task, key) == value for key, value in filters.items()))
    if created_before is not None:
        stmt = stmt.where(models.Task.created_at < created_before)
    order = (models.Task.created_at.desc(), models.Task.id)
    return session.scalars(stmt.order_by(*order).limit(limit)).all()


def get_any(session: orm.Session, task_id: str) -> models.Task | None:
    """The row itself, for the runner."""
    return session.get(models.Task, task_id)


def list_(session: orm.Session, ctx: RequestContext, query: TaskQuery) -> Sequence[sa.Row[Any]]:
    """A page of tasks, as the list shows them: rows of :data:`SUMMARY_COLUMNS`.

    Rows, not ORM objects: loading 25 tasks into the session cost as much CPU as the query.
    """
    now = models.utcnow()
    params = {**_visible_params(ctx, now), "page_limit": query.limit,
              **{f"filter_{key}": value for key, value in query.filters.items()}}
    stmt = _page(ctx.is_admin, tuple(query.filters), query.sort_key, query.sort_dir)
    if query.marker is not None:
        stmt = stmt.where(_after_marker(session, ctx, query, now))
    # On the session's connection: Session.execute would take the ORM's path even for columns.
    return session.connection().execute(stmt, params).all()


def _order(sort_key: str, sort_dir: str) -> list[sa.UnaryExpression[Any]]:
    keys = [sort_key] + [k for k in ("created_at", "id") if k != sort_key]
    return [_direction(models.Task.__table__.c[k], sort_dir) for k in keys]


def _direction(column: sa.ColumnElement[Any], sort_dir: str) -> sa.UnaryExpression[Any]:
    # NULLs first ascending, last descending, on every database (keyset paging relies on it).
    # Only where there can be NULLs: PostgreSQL cannot walk an index (owner, created_at) for
    # ``created_at DESC NULLS LAST`` and sorts every row of the project for each page instead.
    if sort_dir == "desc":
        return column.desc().nulls_last() if column.nullable else column.desc()
    return column.asc().nulls_first() if column.nullable else column.asc()


def _after_marker(session: orm.Session, ctx: RequestContext, query: TaskQuery,
                  now: datetime.datetime) -> sa.ColumnElement[bool]:
    marker = session.scalars(_one(ctx.is_admin), {
        "task_id": query.marker, **_visible_params(ctx, now)}).one_or_none()
    if marker is None:
        raise errors.BadRequest(f"Invalid marker: task {query.marker} could not be found")
    keys = [query.sort_key] + [k for k in ("created_at", "id") if k != query.sort_key]
    return _keyset(keys, marker, query.sort_dir)


def _keyset(keys: list[str], marker: models.Task, sort_dir: str) -> sa.ColumnElement[bool]:
    """Rows strictly after ``marker`` in the (key1, key2, ...) order, NULLs first."""
    clauses: list[sa.ColumnElement[bool]] = []
    for i, key in enumerate(keys):
        equal = [_eq(models.Task, k, getattr(marker, k)) for k in keys[:i]]
        clauses.append(sa.and_(*equal, _beyond(models.Task, key, getattr(marker, key), sort_dir)))
    return sa.or_(*clauses)


def _eq(model: Any, key: str, value: Any) -> sa.ColumnElement[bool]:
    column = getattr(model, key)
    return column.is_(None) if value is None else column == value  # type: ignore[no-any-return]


def _beyond(model: Any, key: str, value: Any, sort_dir: str) -> sa.ColumnElement[bool]:
    column = getattr(model, key)
    if sort_dir == "asc":
        return column.is_not(None) if value is None else column > value  # type: ignore[no-any-return]
    if value is None:
        return sa.false()
    return sa.or_(column < value, column.is_(None))


def add(session: orm.Session, task: models.Task) -> None:
    session.add(task)
    session.flush()


def insert(connection: sa.Connection, task: models.Task) -> None:
    """:func:`add` through Core, for the API's create: no session, no flush; ``task`` comes
    back detached with its defaults filled in, as :func:`add` and a commit leave it."""
    connection.execute(_INSERT, models.insert_values(task))
    models.mark_written(task)


_TASKS = models.TASKS
_INSERT = sa.insert(_TASKS)


def compare_and_set(session: orm.Session, task_id: str, expected: str,
                    **values: Any) -> bool:
    """Update the task only if its status is still ``expected``; True when it was."""
    values.setdefault("updated_at", models.utcnow())
    result = session.execute(
        sa.update(models.Task)
        .where(models.Task.id == task_id, models.Task.status == expected)
        .values(**values)
        .execution_options(synchronize_session=False))
    return bool(result.rowcount)  # type: ignore[attr-defined]


def ids_with_status(session: orm.Session, status: str) -> list[str]:
    return list(session.scalars(sa.select(models.Task.id).where(
        models.Task.status == status, models.Task.deleted.is_(False))))


def types_of(session: orm.Session, task_ids: Sequence[str]) -> dict[str, str]:
    """Task id → type, for ``task_ids``."""
    rows = session.execute(sa.select(models.Task.id, models.Task.type).where(
        models.Task.id.in_(list(task_ids))))
    return {task_id: task_type for task_id, task_type in rows}


def bindings(session: orm.Session, task_ids: Sequence[str]) -> dict[str, str]:
    """Task id → the runner it is bound to, for those of ``task_ids`` that are bound."""
    rows = session.execute(sa.select(models.Task.id, models.Task.bound_to).where(
        models.Task.id.in_(list(task_ids)), models.Task.bound_to.is_not(None)))
    return {task_id: str(holder) for task_id, holder in rows}


def by_image(session: orm.Session, image_id: str) -> Sequence[models.Task]:
    now = models.utcnow()
    return session.scalars(sa.select(models.Task).where(
        models.Task.image_id == image_id, models.Task.deleted.is_(False),
        sa.or_(models.Task.expires_at.is_(None), models.Task.expires_at > now),
    ).order_by(models.Task.created_at.desc())).all()


def purge_expired(session: orm.Session, now: datetime.datetime) -> int:
    """Hard-delete tasks past ``expires_at`` and soft-deleted ones (and their runs); return
    how many tasks."""
    gone = sa.or_(models.Task.expires_at <= now, models.Task.deleted.is_(True))
    attempts.purge(session, sa.select(models.Task.id).where(gone))
    result = session.execute(sa.delete(models.Task).where(gone))
    return int(result.rowcount)  # type: ignore[attr-defined]
