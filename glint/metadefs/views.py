"""How metadefs look on the wire: Glance's documents, without the attributes that are unset."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from glint.db import models
from glint.timefmt import isotime

NAMESPACES = "/v2/metadefs/namespaces"
Timed = (models.MetadefNamespace | models.MetadefObject | models.MetadefProperty
         | models.MetadefTag | models.MetadefResourceType | models.MetadefNamespaceResourceType)


def _present(values: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None}


def _times(row: Timed) -> dict[str, Any]:
    return {"created_at": isotime(row.created_at), "updated_at": isotime(row.updated_at)}


def namespace(row: models.MetadefNamespace,
              associations: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
    """A namespace as listed: its attributes and resource type associations (when any)."""
    body = _present({"namespace": row.namespace, "display_name": row.display_name,
                     "description": row.description, "visibility": row.visibility,
                     "protected": row.protected, "owner": row.owner, **_times(row),
                     "self": f"{NAMESPACES}/{row.namespace}",
                     "schema": "/v2/schemas/metadefs/namespace"})
    if associations:
        body["resource_type_associations"] = list(associations)
    return body


def detail(row: models.MetadefNamespace, associations: Sequence[dict[str, Any]],
           objects: Iterable[models.MetadefObject], properties: Iterable[models.MetadefProperty],
           tags: Iterable[models.MetadefTag], prefix: str = "") -> dict[str, Any]:
    """A namespace with everything it holds; ``prefix`` goes before every property name
    (the prefix of the resource type the caller asked about)."""
    body = namespace(row, associations)
    shown_objects = [metadef_object(row.namespace, o, prefix) for o in objects]
    shown_properties = {prefix + p.name: property_definition(p) for p in properties}
    shown_tags = [{"name": t.name} for t in tags]
    for key, value in (("objects", shown_objects), ("properties", shown_properties),
                       ("tags", shown_tags)):
        if value:
            body[key] = value
    return body


def metadef_object(namespace_name: str, row: models.MetadefObject,
                   prefix: str = "") -> dict[str, Any]:
    return _present({
        "name": row.name, "description": row.description,
        "required": [prefix + name for name in row.required] if row.required else None,
        "properties": {prefix + name: value for name, value in row.properties.items()},
        **_times(row),
        "self": f"{NAMESPACES}/{namespace_name}/objects/{row.name}",
        "schema": "/v2/schemas/metadefs/object"})


def property_definition(row: models.MetadefProperty) -> dict[str, Any]:
    """A property's definition without its name (as namespaces and lists key them by it)."""
    return dict(row.json_schema)


def metadef_property(row: models.MetadefProperty) -> dict[str, Any]:
    return {"name": row.name, **row.json_schema}


def tag(row: models.MetadefTag) -> dict[str, Any]:
    return {"name": row.name, **_times(row)}


def resource_type(row: models.MetadefResourceType) -> dict[str, Any]:
    return {"name": row.name, **_times(row)}


def association(row: models.MetadefNamespaceResourceType, name: str) -> dict[str, Any]:
    return _present({"name": name, "prefix": row.prefix,
                     "properties_target": row.properties_target, **_times(row)})
