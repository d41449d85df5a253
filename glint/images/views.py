"""How an image looks on the wire and in notifications."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from glint.db import models
from glint.notifiers import base as notifiers
from glint.timefmt import isotime

HIDDEN_PROPERTIES = frozenset({"os_glance_stage_host", "os_glance_hash_op_host"})


def api(image: models.Image, stores: Sequence[str] | None = None) -> dict[str, Any]:
    """The image as ``GET /v2/images/{id}`` returns it (Glance's base attributes, flattened),
    with ``stores`` ("a,b") when given: multi-store glints name the stores holding the data."""
    body: dict[str, Any] = {
        name: value for name, value in image.extra_properties.items()
        if name not in HIDDEN_PROPERTIES
    }
    body.update({
        "id": image.id,
        "name": image.name,
        "status": image.status,
        "visibility": image.visibility,
        "protected": image.protected,
        "os_hidden": image.os_hidden,
        "checksum": image.checksum,
        "os_hash_algo": image.os_hash_algo,
        "os_hash_value": image.os_hash_value,
        "owner": image.owner,
        "size": image.size,
        "virtual_size": image.virtual_size,
        "container_format": image.container_format,
        "disk_format": image.disk_format,
        "min_ram": image.min_ram,
        "min_disk": image.min_disk,
        "created_at": isotime(image.created_at),
        "updated_at": isotime(image.updated_at),
        "tags": [t.value for t in image.tags],
        "self": f"/v2/images/{image.id}",
        "file": f"/v2/images/{image.id}/file",
        "schema": "/v2/schemas/image",
    })
    if stores is not None:
        body["stores"] = ",".join(stores)
    return body


def event(event_type: str, image: models.Image) -> notifiers.Event:
    """The notification ``event_type`` (``image.create``, ``image.update``...) about ``image``."""
    return notifiers.Event(event_type, notification(image))


def notification(image: models.Image) -> dict[str, Any]:
    """Glance's image notification payload; locations are never included."""
    return {
        "id": image.id,
        "name": image.name,
        "status": image.status,
        "created_at": isotime(image.created_at),
        "updated_at": isotime(image.updated_at),
        "min_disk": image.min_disk,
        "min_ram": image.min_ram,
        "protected": image.protected,
        "checksum": image.checksum,
        "owner": image.owner,
        "disk_format": image.disk_format,
        "container_format": image.container_format,
        "size": image.size,
        "virtual_size": image.virtual_size,
        "is_public": image.visibility == "public",
        "visibility": image.visibility,
        "properties": image.extra_properties,
        "tags": [t.value for t in image.tags],
        "deleted": image.deleted,
        "deleted_at": isotime(image.deleted_at),
    }


def member(row: models.ImageMember) -> dict[str, Any]:
    """An image member as ``/v2/images/{id}/members`` returns it (Glance's member schema)."""
    return {
        "created_at": isotime(row.created_at),
        "image_id": row.image_id,
        "member_id": row.member,
        "schema": "/v2/schemas/member",
        "status": row.status,
        "updated_at": isotime(row.updated_at),
    }


def member_notification(row: models.ImageMember) -> dict[str, Any]:
    """Glance's ``image.member.*`` payload."""
    return {
        "image_id": row.image_id,
        "member_id": row.member,
        "status": row.status,
        "created_at": isotime(row.created_at),
        "updated_at": isotime(row.updated_at),
        "deleted": row.deleted,
        "deleted_at": isotime(row.deleted_at),
    }
