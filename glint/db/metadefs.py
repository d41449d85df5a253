"""Metadata definition rows: namespaces and what they hold. Callers own the session.

Names are case-sensitive and unique: a namespace's across glint, an object's, property's or
tag's within its namespace, a resource type's across glint.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import orm

from glint.context import RequestContext
from glint.db import models

M = models
Child = TypeVar("Child", bound=models.MetadefObject | models.MetadefProperty | models.MetadefTag)
SORT_KEYS = ("namespace", "display_name", "created_at", "updated_at")


@dataclasses.dataclass(frozen=True)
class NamespaceQuery:
    """What ``GET /v2/metadefs/namespaces`` asks for."""

    limit: int
    marker: str | None = None
    sort_key: str = "created_at"
    sort_dir: str = "desc"
    visibility: str | None = None
    resource_types: tuple[str, ...] = ()


def _visible(ctx: RequestContext) -> sa.ColumnElement[bool]:
    """Public namespaces and the caller's project's; every one for an admin."""
    if ctx.is_admin:
        return sa.true()
    return sa.or_(M.MetadefNamespace.visibility == "public",
                  M.MetadefNamespace.owner == (ctx.project_id or ""))


def namespace(session: orm.Session, ctx: RequestContext, name: str,
              for_update: bool = False) -> M.MetadefNamespace | None:
    """The namespace called ``name`` when ``ctx`` can see it."""
    stmt = sa.select(M.MetadefNamespace).where(M.MetadefNamespace.namespace == name,
                                               _visible(ctx))
    if for_update:
        stmt = stmt.with_for_update()
    return session.scalars(stmt).one_or_none()


def namespace_exists(session: orm.Session, name: str) -> bool:
    """Whether any namespace (seen by the caller or not) is called ``name``."""
    return session.scalar(sa.select(sa.func.count()).select_from(M.MetadefNamespace).where(
        M.MetadefNamespace.namespace == name)) != 0


def namespaces(session: orm.Session, ctx: RequestContext, query: NamespaceQuery,
               marker: M.MetadefNamespace | None) -> Sequence[M.MetadefNamespace]:
    """One page of the namespaces ``ctx`` can see, after ``marker``."""
    ns = M.MetadefNamespace
    stmt = sa.select(ns).where(_visible(ctx))
    if query.visibility is not None:
        stmt = stmt.where(ns.visibility == query.visibility)
    if query.resource_types:
        associated = sa.select(M.MetadefNamespaceResourceType.namespace_id).join(
            M.MetadefResourceType).where(M.MetadefResourceType.name.in_(query.resource_types))
        stmt = stmt.where(ns.id.in_(associated))
    key, tiebreak = getattr(ns, query.sort_key), ns.id
    if marker is not None:
        stmt = stmt.where(_after(key, tiebreak, getattr(marker, query.sort_key), marker.id,
                                 query.sort_dir))
    # NULLs (a namespace without display_name) first ascending, last descending, on both engines.
    order = ((key.asc().nulls_first(), tiebreak.asc()) if query.sort_dir == "asc"
             else (key.desc().nulls_last(), tiebreak.desc()))
    return session.scalars(stmt.order_by(*order).limit(query.limit)).all()


def _after(key: Any, tiebreak: Any, value: Any, marker_id: int,
           sort_dir: str) -> sa.ColumnElement[bool]:
    """Rows that sort after the marker's, in the order ``namespaces`` uses."""
    if sort_dir == "asc":
        if value is None:
            return sa.or_(key.is_not(None), sa.and_(key.is_(None), tiebreak > marker_id))
        return sa.or_(key > value, sa.and_(key == value, tiebreak > marker_id))
    if value is None:
        return sa.and_(key.is_(None), tiebreak < marker_id)
    return sa.or_(key < value, key.is_(None), sa.and_(key == value, tiebreak < marker_id))


def children(session: orm.Session, model: type[Child], namespace_id: int) -> Sequence[Child]:
    """A namespace's objects, properties or tags, oldest first."""
    return session.scalars(sa.select(model).where(model.namespace_id == namespace_id)
                           .order_by(model.created_at, model.id)).all()


def child(session: orm.Session, model: type[Child], namespace_id: int,
          name: str) -> Child | None:
    return session.scalars(sa.select(model).where(model.namespace_id == namespace_id,
                                                  model.name == name)).one_or_none()


def delete_children(session: orm.Session, model: type[Child], namespace_id: int) -> None:
    session.execute(sa.delete(model).where(model.namespace_id == namespace_id))


def resource_types(session: orm.Session) -> Sequence[M.MetadefResourceType]:
    return session.scalars(sa.select(M.MetadefResourceType)
                           .order_by(M.MetadefResourceType.id)).all()


def resource_type(session: orm.Session, name: str) -> M.MetadefResourceType | None:
    return session.scalars(sa.select(M.MetadefResourceType).where(
        M.MetadefResourceType.name == name)).one_or_none()


def associations(session: orm.Session, namespace_ids: Sequence[int]
                 ) -> Sequence[tuple[M.MetadefNamespaceResourceType, str]]:
    """The resource type associations of these namespaces, with each resource type's name."""
    assoc = M.MetadefNamespaceResourceType
    return [(row, name) for row, name in session.execute(
        sa.select(assoc, M.MetadefResourceType.name).join(M.MetadefResourceType)
        .where(assoc.namespace_id.in_(namespace_ids))
        .order_by(assoc.created_at, M.MetadefResourceType.id))]


def association(session: orm.Session, namespace_id: int,
                resource_type_id: int) -> M.MetadefNamespaceResourceType | None:
    return session.get(M.MetadefNamespaceResourceType, (namespace_id, resource_type_id))
