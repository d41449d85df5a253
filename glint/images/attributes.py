"""What a client may write on an image, and which values it may write (Glance's rules).

Base attributes are columns of the image; every other name is an extra property whose value
is a string. Each check raises the error Glance answers with: a name the client may not write
is Forbidden (403), a value of the wrong shape is BadRequest (400) naming the attribute, and
going over a count quota is TooLarge (413).

Who may create an image for which owner, and make it ``public`` or ``community``, is the
policy's say (:mod:`glint.policy`: ``add_image``, ``publicize_image``, ``communitize_image``).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from glint import errors
from glint.db import models
from glint.settings import Settings

if TYPE_CHECKING:  # what a script's validate gets
    from glint.scripts.contract import ScriptSettings

VISIBILITIES = ("public", "community", "shared", "private")
# Base attributes a client may write (``id`` only on create).
SETTABLE = frozenset({"id", "name", "visibility", "protected", "os_hidden", "disk_format",
                      "container_format", "min_disk", "min_ram", "tags", "owner"})
READ_ONLY = frozenset({"status", "checksum", "os_hash_algo", "os_hash_value", "size",
                       "virtual_size", "created_at", "updated_at", "direct_url", "self", "file",
                       "schema", "stores", "locations"})
RESERVED = frozenset({"location", "deleted", "deleted_at"})
RESERVED_PREFIX = "os_glance"
# Only settable while the image has no data yet (Glance: queued or importing).
FORMATS = frozenset({"disk_format", "container_format"})
FORMATS_MUTABLE_IN = frozenset({"queued", "importing"})
MAX_LENGTH = 255
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def check_name(key: str) -> None:
    """Forbidden unless a client may write ``key`` at all."""
    if key in READ_ONLY:
        raise errors.Forbidden(f"Attribute '{key}' is read-only.")
    if key in RESERVED or key.startswith(RESERVED_PREFIX):
        raise errors.Forbidden(f"Attribute '{key}' is reserved.")


def split(values: Mapping[str, Any],
          settings: Settings) -> tuple[dict[str, Any], dict[str, str], list[str]]:
    """Split create values into base attributes, extra properties and tags, validating each."""
    base: dict[str, Any] = {}
    extra: dict[str, str] = {}
    tags: list[str] = []
    for key, value in values.items():
        check_name(key)
        if key == "tags":
            tags = tag_list(value)
        elif key in SETTABLE:
            base[key] = base_value(key, value, settings)
        else:
            extra[key] = extra_value(key, value)
    check_counts(len(extra), len(set(tags)), settings)
    return base, extra, tags


def base_value(key: str, value: Any, settings: Settings | ScriptSettings) -> Any:
    """``value`` checked against the schema of base attribute ``key``; BadRequest if it fails."""
    choices = {"disk_format": settings.disk_formats,
               "container_format": settings.container_formats,
               "visibility": VISIBILITIES}
    if key in choices:
        if value is None and key != "visibility":
            return None
        if value not in choices[key]:
            raise errors.BadRequest(f"Invalid value {_show(value)} for '{key}': "
                                    f"must be one of {', '.join(choices[key])}")
        return value
    if key in ("protected", "os_hidden"):
        if not isinstance(value, bool):
            raise errors.BadRequest(f"Invalid value {_show(value)} for '{key}': "
                                    "must be a boolean")
        return value
    if key in ("min_disk", "min_ram"):
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**31:
            raise errors.BadRequest(f"Invalid value {_show(value)} for '{key}': "
                                    "must be an integer >= 0")
        return value
    if key == "id":
        return _uuid(value)
    if key == "tags":
        return tag_list(value)
    return _short_string(key, value)


def extra_value(key: str, value: Any) -> str:
    """An extra property's value: a string (glanceclient's schema says so too)."""
    if not key or len(key) > MAX_LENGTH:
        raise errors.BadRequest(f"Invalid property name {key[:40]!r}: "
                                f"1 to {MAX_LENGTH} characters")
    if not isinstance(value, str):
        raise errors.BadRequest(f"Invalid value for property '{key}': must be a string")
    return value


def tag(value: Any) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= MAX_LENGTH:
        raise errors.BadRequest(f"Invalid tag {_show(value)}: must be a string of "
                                f"1 to {MAX_LENGTH} characters")
    if not value.isprintable():
        raise errors.BadRequest("Invalid tag: must not contain control characters")
    return value


def tag_list(value: Any) -> list[str]:
    if not isinstance(value, list):
        raise errors.BadRequest("Invalid value for 'tags': must be a list of strings "
                                f"of 1 to {MAX_LENGTH} characters")
    return sorted({tag(item) for item in value})


def check_formats_mutable(image: models.Image, key: str) -> None:
    if key in FORMATS and image.status not in FORMATS_MUTABLE_IN:
        raise errors.Forbidden(f"Attribute {key} can be only replaced for a queued image.")


def check_counts(properties: int, tags: int, settings: Settings) -> None:
    """TooLarge past ``image_property_quota`` extra properties or ``image_tag_quota`` tags."""
    if over_quota(properties, settings.image_property_quota):
        raise errors.TooLarge(f"The limit has been exceeded on the number of allowed image "
                              f"properties. Attempted: {properties}, "
                              f"Maximum: {settings.image_property_quota}")
    if over_quota(tags, settings.image_tag_quota):
        raise errors.TooLarge(f"The limit has been exceeded on the number of allowed image "
                              f"tags. Attempted: {tags}, Maximum: {settings.image_tag_quota}")


def over_quota(count: int, quota: int) -> bool:
    """Glance's rule: a negative quota is no limit."""
    return 0 <= quota < count


def property_count(image: models.Image) -> int:
    """Extra properties that count against the quota (glint's own ``os_glance_*`` do not)."""
    return sum(1 for p in image.properties if not p.name.startswith(RESERVED_PREFIX))


def _short_string(key: str, value: Any) -> str | None:
    if value is not None and not isinstance(value, str):
        raise errors.BadRequest(f"Invalid value {_show(value)} for '{key}': must be a string")
    if isinstance(value, str) and len(value) > MAX_LENGTH:
        raise errors.BadRequest(f"Invalid value for '{key}': longer than {MAX_LENGTH} "
                                "characters")
    return value


def _uuid(value: Any) -> str:
    if not isinstance(value, str) or not _UUID.fullmatch(value):
        raise errors.BadRequest(f"Invalid value {_show(value)} for 'id': must be a UUID")
    return str(uuid.UUID(value))


def _show(value: Any) -> str:
    """A value for an error message, cut short."""
    text = repr(value)
    return text if len(text) <= 64 else text[:61] + "..."
