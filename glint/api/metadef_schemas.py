"""Glance's JSON schemas of metadefs (``/v2/schemas/metadefs/*``) and checking bodies by them.

``metadef_schemas.json`` holds the ten documents exactly as Glance builds them
(``glance/api/v2/metadef_*.py``: ``get_schema().raw()`` and ``get_collection_schema().raw()``).
Request bodies are checked against them as Glance does, after refusing read-only attributes.
"""

from __future__ import annotations

import functools
import json
from importlib import resources
from typing import Any

import jsonschema

from glint import errors

NAMES = ("namespace", "namespaces", "object", "objects", "property", "properties",
         "resource_type", "resource_types", "tag", "tags")
MESSAGE_LIMIT = 300


@functools.cache
def documents() -> dict[str, dict[str, Any]]:
    text = resources.files("glint.api").joinpath("metadef_schemas.json").read_text("utf-8")
    return dict(json.loads(text))


def document(name: str) -> dict[str, Any]:
    """The schema ``name`` (one of :data:`NAMES`); KeyError for any other."""
    return documents()[name]


@functools.cache
def _validator(name: str) -> jsonschema.protocols.Validator:
    return jsonschema.Draft4Validator(document(name))


def check(name: str, body: Any, read_only: tuple[str, ...] = ()) -> dict[str, Any]:
    """``body`` when schema ``name`` accepts it; Forbidden for a ``read_only`` attribute,
    BadRequest naming the first problem otherwise."""
    if not isinstance(body, dict):
        raise errors.BadRequest("The request body must be a JSON object.")
    for key in read_only:
        if key in body:
            raise errors.Forbidden(f"Attribute '{key}' is read-only.")
    error = jsonschema.exceptions.best_match(_validator(name).iter_errors(body))
    if error is not None:
        where = "/".join(str(part) for part in error.absolute_path)
        raise errors.BadRequest(f"Provided object does not match schema '{name}': "
                                f"{error.message[:MESSAGE_LIMIT]}"
                                + (f" (at '{where[:80]}')" if where else ""))
    return body
