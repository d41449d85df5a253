"""The ``cache_prefetch`` task script: fill this node's image cache with an image.

Input::

    {"image_id": "<an active image queued with PUT /v2/cache/{image_id}>"}

``PUT /v2/cache/{image_id}`` queues the image (``queue/<id>`` in the cache directory) and
creates this task, which reads the image from its store into the cache, verified against its
``checksum`` and ``os_hash_value`` (:mod:`glint.cache.fill`), then takes it off the queue. An
image taken off the queue before the task runs (``DELETE /v2/cache``) is left alone. While a
download is filling the same image the task waits for it (or for it to stall), so a re-run
after a lost worker finishes the job. The cache is the node's where the task runs: with
remote executors, route ``cache_prefetch`` to ``thread`` (``executor_routes``) so that it runs
on the API node that queued it.
"""

from __future__ import annotations

import time
from typing import Any

from glint import errors
from glint.cache.cache import ImageCache
from glint.cache.fill import Expected
from glint.scripts import contract

DESCRIPTION = "Fill this node's image cache with an image queued for prefetch."

INPUT_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["image_id"],
    "properties": {"image_id": {"type": "string", "minLength": 1, "maxLength": 36,
                                "description": "the image to cache"}},
    "additionalProperties": False,
}
WAIT = 0.5  # seconds between looks at another fill of the image


def main(ctx: contract.ScriptContext) -> contract.JsonObject:
    image_id = ctx.task_input["image_id"]
    cache = ImageCache.from_settings(ctx.settings)
    if cache is None:
        raise errors.ScriptError("The image cache is off on this node (image_cache_enabled)")
    try:
        if not cache.cached(image_id) and cache.is_queued(image_id):
            try:
                _fill(ctx, cache, image_id)
            finally:
                cache.dequeue(image_id)
        return {"image_id": image_id, "cached": cache.cached(image_id)}
    finally:
        cache.close()


def _fill(ctx: contract.ScriptContext, cache: ImageCache, image_id: str) -> None:
    image, copy = ctx.open_image(image_id, "cache", "cached")
    expected = Expected.of(image)
    if expected is None or expected.size > cache.max_size:
        raise errors.ScriptError(f"Image {image_id} cannot be cached: it has no checksum, or "
                                 "it is larger than image_cache_max_size")
    while (fill := cache.fill(expected)) is None:  # a download is filling it
        if cache.cached(image_id):
            return
        _check_cancel(ctx)
        time.sleep(WAIT)
    for _chunk in fill.wrap(copy.read()):
        ctx.report_progress(fill.size, expected.size)
        _check_cancel(ctx)
    if not fill.done:
        raise errors.ScriptError(f"Image {image_id}'s data in store {copy.store_id} does not "
                                 "match its checksum or multihash: not cached")


def _check_cancel(ctx: contract.ScriptContext) -> None:
    if ctx.should_cancel():
        raise errors.ScriptError("Prefetch cancelled")
