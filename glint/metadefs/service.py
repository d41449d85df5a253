"""Namespaces and resource types: the service behind ``/v2/metadefs`` (see the package doc).

Each call validates, writes and commits in one transaction; what a namespace holds is in
:mod:`glint.metadefs.contents`. Bodies arrive checked against Glance's JSON schemas (the API
does that), so here only what a schema cannot say is checked: names, uniqueness, protection.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import orm

from glint import errors
from glint import policy as policies
from glint.context import RequestContext
from glint.db import engine, models
from glint.db import metadefs as rows
from glint.metadefs import contents, names, views
from glint.metadefs.access import Access

NAMESPACE_FIELDS = ("display_name", "description")


class MetadefService:
    def __init__(self, db: engine.Database, policy: policies.Policy) -> None:
        self.db = db
        self.access = Access(policy)
        self.contents = contents.Contents(db, self.access)

    # -- namespaces ----------------------------------------------------------------------

    def list_namespaces(self, ctx: RequestContext,
                        query: rows.NamespaceQuery) -> list[dict[str, Any]]:
        """A page of the namespaces ``ctx`` may see, each with its resource type associations."""
        self.access.enforce(ctx, "get_metadef_namespaces")
        with self.db.reader() as session:
            marker = None
            if query.marker is not None:
                marker = self.access.namespace(session, ctx, query.marker)
            found = rows.namespaces(session, ctx, query, marker)
            shown = [ns for ns in found if self.access.may_see(ctx, ns)]
            associations = _associations(session, [ns.id for ns in shown])
            return [views.namespace(ns, associations.get(ns.id, [])) for ns in shown]

    def get_namespace(self, ctx: RequestContext, name: str,
                      resource_type: str | None = None) -> dict[str, Any]:
        """A namespace with all it holds; with ``resource_type``, its property names carry
        that resource type's prefix."""
        with self.db.reader() as session:
            ns = self.access.namespace(session, ctx, name)
            return _detail(session, ns, resource_type)

    def create_namespace(self, ctx: RequestContext, body: dict[str, Any]) -> dict[str, Any]:
        """A new namespace, with the associations, objects, properties and tags in ``body``."""
        self.access.enforce(ctx, "add_metadef_namespace")
        for key, action in (("resource_type_associations",
                             "add_metadef_resource_type_association"),
                            ("objects", "add_metadef_object"),
                            ("properties", "add_metadef_property"), ("tags", "add_metadef_tag")):
            if body.get(key):
                self.access.enforce(ctx, action)
        name = names.check(body["namespace"], "namespace")
        with contents.unique_names(self.db) as session:
            _free(session, name)
            ns = models.MetadefNamespace(namespace=name, owner=body.get("owner") or ctx.owner or "")
            _assign(ns, body)
            session.add(ns)
            session.flush()
            for association in body.get("resource_type_associations") or []:
                associate(session, ns, association)
            contents.add_all(session, ns, body)
            return _detail(session, ns)

    def update_namespace(self, ctx: RequestContext, name: str,
                         body: dict[str, Any]) -> dict[str, Any]:
        """Replace the namespace's attributes (renaming it when ``namespace`` differs)."""
        new_name = names.check(body["namespace"], "namespace")
        with contents.unique_names(self.db) as session:
            ns = self.access.namespace(session, ctx, name, "modify_metadef_namespace",
                                       for_update=True)
            if new_name != ns.namespace:
                _free(session, new_name)
            ns.namespace = new_name
            ns.owner = body.get("owner") or ctx.owner or ns.owner
            _assign(ns, body)
            ns.updated_at = models.utcnow()
            session.flush()
            return views.namespace(ns)

    def delete_namespace(self, ctx: RequestContext, name: str) -> None:
        """Delete a namespace and all it holds; Forbidden when it is protected."""
        with self.db.session() as session:
            ns = self.access.namespace(session, ctx, name, "delete_metadef_namespace",
                                       for_update=True)
            if ns.protected:
                raise errors.Forbidden(f"Metadata definition namespace {name} is protected "
                                       "and cannot be deleted.")
            session.delete(ns)

    # -- resource types ------------------------------------------------------------------

    def list_resource_types(self, ctx: RequestContext) -> list[dict[str, Any]]:
        self.access.enforce(ctx, "list_metadef_resource_types")
        with self.db.reader() as session:
            return [views.resource_type(row) for row in rows.resource_types(session)]

    def list_associations(self, ctx: RequestContext, name: str) -> list[dict[str, Any]]:
        with self.db.reader() as session:
            ns = self.access.namespace(session, ctx, name, "get_metadef_resource_type")
            return _associations(session, [ns.id]).get(ns.id, [])

    def associate(self, ctx: RequestContext, name: str, body: dict[str, Any]) -> dict[str, Any]:
        """Associate the resource type ``body["name"]`` (created if new, as Glance does)."""
        with contents.unique_names(self.db) as session:
            ns = self.access.namespace(session, ctx, name,
                                       "add_metadef_resource_type_association", for_update=True)
            return associate(session, ns, body)

    def dissociate(self, ctx: RequestContext, name: str, resource_type: str) -> None:
        with self.db.session() as session:
            ns = self.access.namespace(session, ctx, name,
                                       "remove_metadef_resource_type_association",
                                       for_update=True)
            self.access.unprotected(ns, f"The resource type association {resource_type}")
            found = rows.resource_type(session, resource_type)
            row = rows.association(session, ns.id, found.id) if found is not None else None
            if row is None:
                raise errors.NotFound(f"The metadata definition resource-type association of "
                                      f"resource-type={resource_type} to namespace={name}, "
                                      "was not found.")
            session.delete(row)


def _free(session: orm.Session, name: str) -> None:
    """Conflict when a namespace (visible to the caller or not) already has ``name``."""
    if rows.namespace_exists(session, name):
        raise errors.Conflict(f"A metadata definition namespace with name={name} already "
                              "exists.")


def _assign(ns: models.MetadefNamespace, body: dict[str, Any]) -> None:
    """The writable attributes, with Glance's defaults for the ones ``body`` leaves out."""
    for key in NAMESPACE_FIELDS:
        setattr(ns, key, body.get(key))
    ns.visibility = body.get("visibility") or "private"
    ns.protected = bool(body.get("protected", False))


def associate(session: orm.Session, ns: models.MetadefNamespace, body: dict[str, Any],
              protected: bool = False) -> dict[str, Any]:
    """Associate ``body["name"]`` with ``ns``, creating that resource type if it is new
    (``protected``: as ``glint db load-metadefs`` creates them, like Glance's loader)."""
    name = names.check(body["name"], "resource type")
    resource_type = rows.resource_type(session, name)
    if resource_type is None:
        resource_type = models.MetadefResourceType(name=name, protected=protected)
        session.add(resource_type)
        session.flush()
    elif rows.association(session, ns.id, resource_type.id) is not None:
        raise errors.Conflict(f"The metadata definition resource-type association of "
                              f"resource-type={name} to namespace={ns.namespace}, already "
                              "exists.")
    row = models.MetadefNamespaceResourceType(
        namespace_id=ns.id, resource_type_id=resource_type.id, prefix=body.get("prefix"),
        properties_target=body.get("properties_target"))
    session.add(row)
    session.flush()
    return views.association(row, name)


def _associations(session: orm.Session,
                  namespace_ids: Sequence[int]) -> dict[int, list[dict[str, Any]]]:
    shown: dict[int, list[dict[str, Any]]] = {}
    for row, name in rows.associations(session, namespace_ids):
        shown.setdefault(row.namespace_id, []).append(views.association(row, name))
    return shown


def _detail(session: orm.Session, ns: models.MetadefNamespace,
            resource_type: str | None = None) -> dict[str, Any]:
    associations = _associations(session, [ns.id]).get(ns.id, [])
    prefix = next((a.get("prefix") or "" for a in associations
                   if resource_type is not None and a["name"] == resource_type), "")
    return views.detail(ns, associations, rows.children(session, models.MetadefObject, ns.id),
                        rows.children(session, models.MetadefProperty, ns.id),
                        rows.children(session, models.MetadefTag, ns.id), prefix)

