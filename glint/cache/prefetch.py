"""Queueing an image for prefetch: what ``PUT /v2/cache/{image_id}`` and ``glint cache
queue`` do. The image goes on this node's queue and a ``cache_prefetch`` task
(:mod:`glint.scripts.cache_prefetch`) is created to fill the cache with it."""

from __future__ import annotations

from glint import errors
from glint.cache.cache import ImageCache
from glint.context import RequestContext
from glint.db import models
from glint.images import states
from glint.images.service import ImageService
from glint.tasks.service import TaskService

TASK_TYPE = "cache_prefetch"


def queue(cache: ImageCache, images: ImageService, tasks: TaskService, ctx: RequestContext,
          image_id: str) -> models.Task | None:
    """Queue an active image ``ctx`` may see (NotFound, BadRequest otherwise); the prefetch
    task, or None when the image is cached or queued already."""
    image = images.get(ctx, image_id)
    if image.status != states.ACTIVE:
        raise errors.BadRequest(f"Only images with status active can be targeted for "
                                f"queueing, image {image.id} is {image.status}")
    if cache.cached(image.id) or cache.is_queued(image.id):
        return None
    cache.queue(image.id)
    return tasks.create(ctx, TASK_TYPE, {"image_id": image.id}, authorize=False)
