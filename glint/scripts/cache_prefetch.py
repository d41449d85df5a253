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

from typing import Any

from glint import errors
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


def main(ctx: contract.ScriptContext) -> contract.JsonObject:
    image_id = ctx.task_input["image_id"]
    if ctx.image_cache is None:
        raise errors.ScriptError("The image cache is off on this node (image_cache_enabled)")
    return {"image_id": image_id, "cached": ctx.image_cache.prefetch(ctx, image_id)}
