"""What a namespace holds: its objects, properties and tags (``/v2/metadefs/namespaces/{ns}/...``).

Each is named uniquely within its namespace (Conflict otherwise, renames included). Deleting
any of them is Forbidden while the namespace is protected, as in Glance.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from sqlalchemy import orm

from glint import errors
from glint.context import RequestContext
from glint.db import engine, models
from glint.db import metadefs as rows
from glint.metadefs import names, views
from glint.metadefs.access import Access

Child = models.MetadefObject | models.MetadefProperty | models.MetadefTag
KINDS: dict[type[Any], str] = {models.MetadefObject: "object",
                                 models.MetadefProperty: "property", models.MetadefTag: "tag"}
# What an update replaces (everything but the row's identity and times).
WRITABLE: dict[type[Any], tuple[str, ...]] = {
    models.MetadefObject: ("name", "description", "required", "properties"),
    models.MetadefProperty: ("name", "json_schema"), models.MetadefTag: ("name",)}


@contextlib.contextmanager
def unique_names(db: engine.Database) -> Iterator[orm.Session]:
    """A write session whose unique-name races (two creates at once) end as Conflict."""
    try:
        with db.session() as session:
            yield session
    except sa.exc.IntegrityError:
        raise errors.Conflict("A metadata definition with that name already exists.") from None


def add_all(session: orm.Session, ns: models.MetadefNamespace, body: dict[str, Any]) -> None:
    """The objects, properties and tags of a namespace being created."""
    objects = body.get("objects") or []
    tags = body.get("tags") or []
    names.unique([o["name"] for o in objects], "object")
    names.unique([t["name"] for t in tags], "tag")
    session.add_all([_object(ns, o) for o in objects])
    session.add_all([_property(ns, {**value, "name": name})
                     for name, value in (body.get("properties") or {}).items()])
    session.add_all([_tag(ns, t["name"]) for t in tags])
    session.flush()


def _object(ns: models.MetadefNamespace, body: dict[str, Any]) -> models.MetadefObject:
    return models.MetadefObject(namespace_id=ns.id, name=names.check(body["name"], "object"),
                                description=body.get("description"),
                                required=body.get("required") or None,
                                properties=body.get("properties") or {})


def _property(ns: models.MetadefNamespace, body: dict[str, Any]) -> models.MetadefProperty:
    definition = {key: value for key, value in body.items() if key != "name"}
    return models.MetadefProperty(namespace_id=ns.id,
                                  name=names.check(body["name"], "property"),
                                  json_schema=definition)


def _tag(ns: models.MetadefNamespace, name: str) -> models.MetadefTag:
    return models.MetadefTag(namespace_id=ns.id, name=names.check(name, "tag"))


class Contents:
    def __init__(self, db: engine.Database, access: Access) -> None:
        self.db = db
        self.access = access

    # -- shared steps --------------------------------------------------------------------

    def _list(self, ctx: RequestContext, namespace: str, model: type[rows.Child],
              action: str) -> tuple[models.MetadefNamespace, list[Any]]:
        with self.db.reader() as session:
            ns = self.access.namespace(session, ctx, namespace, action)
            return ns, list(rows.children(session, model, ns.id))

    def _get(self, ctx: RequestContext, namespace: str, model: type[rows.Child], name: str,
             action: str) -> Any:
        with self.db.reader() as session:
            ns = self.access.namespace(session, ctx, namespace, action)
            return _found(session, model, ns, name)

    def _add(self, ctx: RequestContext, namespace: str, action: str, row_of: Any,
             body: Any) -> Any:
        with unique_names(self.db) as session:
            ns = self.access.namespace(session, ctx, namespace, action, for_update=True)
            row = row_of(ns, body)
            _free(session, type(row), ns, row.name)
            session.add(row)
            session.flush()
            return row

    def _update(self, ctx: RequestContext, namespace: str, model: type[rows.Child], name: str,
                action: str, new: Child) -> Any:
        """Replace the row ``name`` with ``new``'s values (``new`` is not added)."""
        with unique_names(self.db) as session:
            ns = self.access.namespace(session, ctx, namespace, action, for_update=True)
            row = _found(session, model, ns, name)
            if new.name != row.name:
                _free(session, model, ns, new.name)
            for column in WRITABLE[model]:
                setattr(row, column, getattr(new, column))
            row.updated_at = models.utcnow()
            session.flush()
            return row

    def _delete(self, ctx: RequestContext, namespace: str, model: type[rows.Child], name: str,
                action: str) -> None:
        with self.db.session() as session:
            ns = self.access.namespace(session, ctx, namespace, action, for_update=True)
            row = _found(session, model, ns, name)
            self.access.unprotected(ns, f"The metadata definition {KINDS[model]} {name}")
            session.delete(row)

    # -- objects -------------------------------------------------------------------------

    def list_objects(self, ctx: RequestContext, namespace: str) -> list[dict[str, Any]]:
        ns, found = self._list(ctx, namespace, models.MetadefObject, "get_metadef_objects")
        return [views.metadef_object(ns.namespace, row) for row in found]

    def get_object(self, ctx: RequestContext, namespace: str, name: str) -> dict[str, Any]:
        row = self._get(ctx, namespace, models.MetadefObject, name, "get_metadef_object")
        return views.metadef_object(namespace, row)

    def create_object(self, ctx: RequestContext, namespace: str,
                      body: dict[str, Any]) -> dict[str, Any]:
        row = self._add(ctx, namespace, "add_metadef_object", _object, body)
        return views.metadef_object(namespace, row)

    def update_object(self, ctx: RequestContext, namespace: str, name: str,
                      body: dict[str, Any]) -> dict[str, Any]:
        new = _object(models.MetadefNamespace(id=0), body)
        row = self._update(ctx, namespace, models.MetadefObject, name, "modify_metadef_object",
                           new)
        return views.metadef_object(namespace, row)

    def delete_object(self, ctx: RequestContext, namespace: str, name: str) -> None:
        self._delete(ctx, namespace, models.MetadefObject, name, "delete_metadef_object")

    # -- properties ----------------------------------------------------------------------

    def list_properties(self, ctx: RequestContext, namespace: str) -> dict[str, Any]:
        _, found = self._list(ctx, namespace, models.MetadefProperty, "get_metadef_properties")
        return {row.name: views.property_definition(row) for row in found}

    def get_property(self, ctx: RequestContext, namespace: str, name: str) -> dict[str, Any]:
        row = self._get(ctx, namespace, models.MetadefProperty, name, "get_metadef_property")
        return views.metadef_property(row)

    def create_property(self, ctx: RequestContext, namespace: str,
                        body: dict[str, Any]) -> dict[str, Any]:
        row = self._add(ctx, namespace, "add_metadef_property", _property, body)
        return views.metadef_property(row)

    def update_property(self, ctx: RequestContext, namespace: str, name: str,
                        body: dict[str, Any]) -> dict[str, Any]:
        new = _property(models.MetadefNamespace(id=0), body)
        row = self._update(ctx, namespace, models.MetadefProperty, name,
                           "modify_metadef_property", new)
        return views.metadef_property(row)

    def delete_property(self, ctx: RequestContext, namespace: str, name: str) -> None:
        self._delete(ctx, namespace, models.MetadefProperty, name, "remove_metadef_property")

    # -- tags ----------------------------------------------------------------------------

    def list_tags(self, ctx: RequestContext, namespace: str) -> list[dict[str, Any]]:
        _, found = self._list(ctx, namespace, models.MetadefTag, "get_metadef_tags")
        return [views.tag(row) for row in found]

    def get_tag(self, ctx: RequestContext, namespace: str, name: str) -> dict[str, Any]:
        return views.tag(self._get(ctx, namespace, models.MetadefTag, name, "get_metadef_tag"))

    def create_tag(self, ctx: RequestContext, namespace: str, name: str) -> dict[str, Any]:
        return views.tag(self._add(ctx, namespace, "add_metadef_tag", _tag, name))

    def create_tags(self, ctx: RequestContext, namespace: str, tag_names: list[str],
                    append: bool) -> list[dict[str, Any]]:
        """Add ``tag_names``; unless ``append``, they replace the namespace's tags."""
        names.unique(tag_names, "tag")
        with unique_names(self.db) as session:
            ns = self.access.namespace(session, ctx, namespace, "add_metadef_tags",
                                       for_update=True)
            if not append:
                rows.delete_children(session, models.MetadefTag, ns.id)
            created = [_tag(ns, name) for name in tag_names]
            for row in created:
                _free(session, models.MetadefTag, ns, row.name)
            session.add_all(created)
            session.flush()
            return [{"name": row.name} for row in created]

    def rename_tag(self, ctx: RequestContext, namespace: str, name: str,
                   new_name: str) -> dict[str, Any]:
        new = _tag(models.MetadefNamespace(id=0), new_name)
        return views.tag(self._update(ctx, namespace, models.MetadefTag, name,
                                      "modify_metadef_tag", new))

    def delete_tag(self, ctx: RequestContext, namespace: str, name: str) -> None:
        self._delete(ctx, namespace, models.MetadefTag, name, "delete_metadef_tag")

    def delete_tags(self, ctx: RequestContext, namespace: str) -> None:
        """Delete every tag of the namespace (Forbidden while it is protected)."""
        with self.db.session() as session:
            ns = self.access.namespace(session, ctx, namespace, "delete_metadef_tags",
                                       for_update=True)
            self.access.unprotected(ns, "Its tags")
            rows.delete_children(session, models.MetadefTag, ns.id)


def _found(session: orm.Session, model: type[rows.Child], ns: models.MetadefNamespace,
           name: str) -> Any:
    row = rows.child(session, model, ns.id, name)
    if row is None:
        raise errors.NotFound(f"Metadata definition {KINDS[model]} {name} was not found in "
                              f"namespace {ns.namespace}.")
    return row


def _free(session: orm.Session, model: type[rows.Child], ns: models.MetadefNamespace,
          name: str) -> None:
    if rows.child(session, model, ns.id, name) is not None:
        raise errors.Conflict(f"A metadata definition {KINDS[model]} with name={name} already "
                              f"exists in namespace={ns.namespace}.")
