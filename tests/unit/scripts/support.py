"""Helpers for script tests: images with data, made as an upload makes them."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from glint import app, datapath
from glint.context import RequestContext
from glint.db import models
from glint.images import service as images


def active_image(glint: app.Glint, ctx: RequestContext, data: bytes,
                 **values: Any) -> models.Image:
    """An active image holding ``data``, with its size and checksums as glint computes them."""
    values = {"name": "source", "disk_format": "raw", "container_format": "bare", **values}
    image = glint.images.create(ctx, values)
    with glint.store.writer(image.id) as writer:
        digest = datapath.copy([data], writer, size_cap=len(data) + 1,
                               hash_algo=glint.settings.hashing_algorithm)
        location = writer.commit()
    glint.images.set_status(ctx, image.id, "saving", expected="queued")
    return glint.images.set_data(ctx, image.id, images.ImageData(
        location=location, size=digest.size, checksum=digest.checksum,
        os_hash_algo=digest.hash_algo, os_hash_value=digest.hash_value), from_status="saving")


def live_images(glint: app.Glint) -> list[models.Image]:
    """Every image not deleted, oldest first."""
    with glint.db.reader() as session:
        return list(session.scalars(sa.select(models.Image).where(models.Image.deleted.is_(False))
                                    .order_by(models.Image.created_at)))


def run_task(glint: app.Glint, ctx: RequestContext, task_type: str,
             task_input: dict[str, Any]) -> models.Task:
    """Create a task (the inline executor runs it at once) and return it as it ended."""
    task = glint.tasks.create(ctx, task_type, task_input)
    return glint.tasks.get(ctx, task.id)
