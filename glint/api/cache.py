"""The image cache API (Glance's ``/v2/cache``, API v2.14): this node's cache and its queue.

Each API node has its own cache (:mod:`glint.cache`), so these answer for the node that takes
the request, as Glance's do. ``PUT /v2/cache/{image_id}`` queues an active image and starts a
``cache_prefetch`` task (:mod:`glint.scripts.cache_prefetch`) that fills the cache; it shows in
the Tasks API. The rules are ``cache_list``, ``cache_image`` and ``cache_delete`` (admins).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from glint import errors
from glint import policy as policies
from glint.api import identity
from glint.api.images import image_id
from glint.api.routing import resource
from glint.cache import prefetch
from glint.cache.cache import ImageCache
from glint.context import RequestContext
from glint.images.service import ImageService
from glint.tasks.service import TaskService

CLEAR_TARGET = "x-image-cache-clear-target"
CLEAR_TARGETS = {"": ("cache", "queue"), "both": ("cache", "queue"), "cache": ("cache",),
                 "queue": ("queue",)}


class CacheApi:
    def __init__(self, cache: ImageCache, images: ImageService, tasks: TaskService) -> None:
        self.cache, self.images, self.tasks = cache, images, tasks

    def list(self, request: Request) -> Response:
        self._enforce(request, "cache_list")
        return JSONResponse(listing(self.cache))

    def queue(self, request: Request) -> Response:
        ctx = self._enforce(request, "cache_image")
        prefetch.queue(self.cache, self.images, self.tasks, ctx, image_id(request))
        return Response(status_code=202)

    def delete(self, request: Request) -> Response:
        self._enforce(request, "cache_delete")
        wanted = image_id(request)
        self.cache.delete(wanted)
        self.cache.dequeue(wanted)
        return Response(status_code=204)

    def clear(self, request: Request) -> Response:
        self._enforce(request, "cache_delete")
        target = request.headers.get(CLEAR_TARGET, "").strip().lower()
        if target not in CLEAR_TARGETS:
            raise errors.BadRequest(f"Invalid {CLEAR_TARGET} header {target!r}: must be "
                                    "cache, queue or both")
        if "queue" in CLEAR_TARGETS[target]:
            self.cache.clear_queue()
        if "cache" in CLEAR_TARGETS[target]:
            self.cache.clear()
        return Response(status_code=204)

    def _enforce(self, request: Request, action: str) -> RequestContext:
        ctx = identity.context(request)
        self.images.policy.enforce(ctx, action, policies.project_target(ctx))
        return ctx


def listing(cache: ImageCache) -> dict[str, Any]:
    """Glance's answer to ``GET /v2/cache``."""
    return {"cached_images": [{"image_id": entry.image_id, "hits": entry.hits,
                               "last_accessed": entry.last_accessed,
                               "last_modified": entry.last_modified, "size": entry.size}
                              for entry in cache.entries()],
            "queued_images": cache.queued()}


def routes(cache: ImageCache | None, images: ImageService,
           tasks: TaskService) -> list[BaseRoute]:
    """The cache API; none when the cache is off (404, as Glance without a cache)."""
    if cache is None:
        return []
    api = CacheApi(cache, images, tasks)
    return [resource("/v2/cache", {"GET": api.list, "DELETE": api.clear}),
            resource("/v2/cache/{image_id}", {"PUT": api.queue, "DELETE": api.delete})]
