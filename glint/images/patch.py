"""Image ``PATCH`` documents: parsed and checked whole first, then applied to a locked row.

Glance takes two media types. v2.1 is RFC 6902 (``{"op": "replace", "path": "/name",
"value": ...}``); v2.0 is the JSON Schema draft-4 form (``{"replace": "/name", "value": ...}``),
whose ``add`` refuses a name that already exists. Only ``add``, ``remove`` and ``replace`` on
depth-1 paths are served; ``/tags`` is replaced as a whole list.

Parsing raises what Glance's deserializer does before looking at the image (400 for a malformed
document or value, 403 for a read-only or reserved name); applying raises what depends on the
image (403 for removing a base attribute or changing formats after upload, 409 for a missing
property).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from typing import Any

from glint import errors
from glint.context import RequestContext
from glint.db import models
from glint.images import attributes
from glint.settings import Settings

V2_0 = "application/openstack-images-v2.0-json-patch"
V2_1 = "application/openstack-images-v2.1-json-patch"
MEDIA_TYPES = (V2_0, V2_1)
OPERATIONS = ("add", "remove", "replace")
# Base attributes a patch may write; ``id`` is fixed once the image exists.
BASE = attributes.SETTABLE - {"id"}
# Paths deeper than one level that Glance knows: ``/locations/N`` (never writable in glint).
_DEPTH = {"locations": {"add": 2, "remove": 2, "replace": 1}}
_UNESCAPED_TILDE = re.compile(r"~(?![01])")
_ADJACENT_SLASHES = re.compile(r"/\s*?/")


@dataclasses.dataclass(frozen=True)
class Change:
    """One operation on one attribute or extra property."""

    op: str
    name: str
    value: Any = None
    strict_add: bool = False  # v2.0: ``add`` of something that exists is a conflict


def parse(document: Any, media_type: str, settings: Settings) -> list[Change]:
    """The changes in ``document`` (already decoded JSON) sent as ``media_type``."""
    check_media_type(media_type)
    if not isinstance(document, list):
        raise errors.BadRequest("Request body must be a JSON array of operation objects.")
    return [_change(raw, media_type, settings) for raw in document]


def check_media_type(media_type: str) -> None:
    """UnsupportedMediaType (415, with ``Accept-Patch``) unless a patch format Glance takes."""
    if media_type not in MEDIA_TYPES:
        raise errors.UnsupportedMediaType(f"Image PATCH expects Content-Type one of: "
                                          f"{', '.join(MEDIA_TYPES)}",
                                          accept_patch=", ".join(MEDIA_TYPES))


def _change(raw: Any, media_type: str, settings: Settings) -> Change:
    if not isinstance(raw, dict):
        raise errors.BadRequest("Operations must be JSON objects.")
    if media_type == V2_1:
        op, pointer = _op_v2_1(raw), raw.get("path")
        if pointer is None:
            raise errors.BadRequest("Unable to find 'path' in JSON Schema change")
    else:
        op = _op_v2_0(raw)
        pointer = raw[op]
    path = decode_pointer(pointer)
    if len(path) != _DEPTH.get(path[0], {}).get(op, 1):
        raise errors.BadRequest(f"Invalid JSON pointer for this resource: '/{'/'.join(path)}'")
    name = path[0]
    attributes.check_name(name)
    if name == "id":
        raise errors.Forbidden("Attribute 'id' is read-only.")
    if op == "remove":
        return Change(op, name)
    if "value" not in raw:
        raise errors.BadRequest(f'Operation "{op}" requires a member named "value".')
    return Change(op, name, _value(name, raw["value"], settings),
                  strict_add=media_type == V2_0)


def _op_v2_1(raw: dict[str, Any]) -> str:
    op = raw.get("op")
    if op is None:
        raise errors.BadRequest("Unable to find `op` in JSON Schema change. It must be one of "
                                f"the following: {', '.join(OPERATIONS)}.")
    if op not in OPERATIONS:
        raise errors.BadRequest(f"Invalid operation: `{str(op)[:32]}`. It must be one of the "
                                f"following: {', '.join(OPERATIONS)}.")
    return str(op)


def _op_v2_0(raw: dict[str, Any]) -> str:
    found = [op for op in OPERATIONS if op in raw]
    if len(found) != 1:
        raise errors.BadRequest('Operation objects must contain exactly one member named '
                                '"add", "remove", or "replace".')
    return found[0]


def decode_pointer(pointer: Any) -> list[str]:
    """A JSON pointer's tokens (``~1`` is ``/``, ``~0`` is ``~``), with Glance's checks."""
    if not isinstance(pointer, str):
        raise errors.BadRequest("Pointer must be a string.")
    shown = pointer[:64]
    if not pointer.startswith("/"):
        raise errors.BadRequest(f'Pointer `{shown}` does not start with "/".')
    if _ADJACENT_SLASHES.search(pointer[1:]):
        raise errors.BadRequest(f'Pointer `{shown}` contains adjacent "/".')
    if len(pointer) > 1 and pointer.endswith("/"):
        raise errors.BadRequest(f'Pointer `{shown}` end with "/".')
    if not pointer[1:].strip():
        raise errors.BadRequest(f"Pointer `{shown}` does not contains valid token.")
    if _UNESCAPED_TILDE.search(pointer):
        raise errors.BadRequest(f'Pointer `{shown}` contains "~" not part of a recognized '
                                "escape sequence.")
    return [part.replace("~1", "/").replace("~0", "~").strip()
            for part in pointer[1:].split("/")]


def _value(name: str, value: Any, settings: Settings) -> Any:
    if name in BASE:
        return attributes.base_value(name, value, settings)
    return attributes.extra_value(name, value)


# -- applying --------------------------------------------------------------------------------

def apply(image: models.Image, changes: Sequence[Change],
          ctx: RequestContext, settings: Settings) -> None:
    """Apply ``changes`` in order to ``image`` (the caller rolls back if one fails)."""
    for change in changes:
        if change.op == "remove":
            _remove(image, change.name)
        elif change.op == "add":
            _add(image, change, ctx)
        else:
            _replace(image, change, ctx)


def _replace(image: models.Image, change: Change, ctx: RequestContext) -> None:
    if change.name in BASE:
        _set(image, change.name, change.value, ctx)
    elif change.name in image.extra_properties:
        image.set_property(change.name, change.value)
    else:
        raise errors.Conflict(f"Property {change.name} does not exist.")


def _add(image: models.Image, change: Change, ctx: RequestContext) -> None:
    if change.strict_add and (change.name in BASE or change.name in image.extra_properties):
        raise errors.Conflict(f"Property {change.name} already present.")
    if change.name in BASE:
        _set(image, change.name, change.value, ctx)
    else:
        image.set_property(change.name, change.value)


def _remove(image: models.Image, name: str) -> None:
    if name in BASE:
        raise errors.Forbidden(f"Property {name} may not be removed.")
    if name not in image.extra_properties:
        raise errors.Conflict(f"Property {name} does not exist.")
    image.remove_property(name)


def _set(image: models.Image, name: str, value: Any, ctx: RequestContext) -> None:
    if name == "owner" and not ctx.is_admin:
        raise errors.Forbidden("Owner can't be updated by non admin.")
    attributes.check_formats_mutable(image, name)
    if name == "tags":
        kept = {t.value: t for t in image.tags}
        image.tags[:] = [kept.get(v) or models.ImageTag(value=v) for v in value]
    else:
        setattr(image, name, value)
