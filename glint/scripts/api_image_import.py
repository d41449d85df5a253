"""The ``api_image_import`` task script: data into an existing image, Glance's interoperable import.

Created by ``POST /v2/images/{id}/import`` (:mod:`glint.images.imports`), which took the
image's import lock for this task first. Input, as Glance's::

    {"image_id": "<uuid>",
     "import_req": {"method": {"name": "web-download", "uri": "https://..."}},
     "backend": ["filesystem"]}

``glance-direct`` copies the data staged by ``PUT /v2/images/{id}/stage`` (the image is
``uploading``); ``web-download`` fetches the URI (the image is ``queued``), through the same
URL filter and fetching code as the ``import`` script (:mod:`glint.scripts.fetch`), straight
into the store. Either way the image goes ``importing → active``, with md5 and the multihash
computed in the one pass that writes the store.

On the way the data is checked as Glance's conversion plugin checks it
(:mod:`glint.scripts.intake`): it must be in the image's ``disk_format`` (for container format
``bare``) and pass the format inspector's safety checks; ``virtual_size`` comes from the
inspector. The settings ``import_decompress`` (not for container format ``compressed``) and
``import_conversion_format`` apply here too; a conversion changes the image's ``disk_format``.

On failure the image goes back to ``queued`` (Glance's revert), its staged data and any partly
written bytes are removed, and the task fails saying why. The lock is released in every case.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from typing import Any

from glint import errors
from glint.images import imports, staging
from glint.images import states as image_states
from glint.scripts import contract, db_api, fetch, intake
from glint.settings import Settings
from glint.stores.base import StoreWriter

DESCRIPTION = ("Import data into an existing image: glance-direct (staged data) or "
               "web-download (POST /v2/images/{id}/import).")

INPUT_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["image_id", "import_req"],
    "properties": {
        "image_id": {"type": "string", "minLength": 36, "maxLength": 36},
        "import_req": {
            "type": "object", "required": ["method"],
            "properties": {"method": {"type": "object", "required": ["name"],
                                      "properties": {"name": {"type": "string"},
                                                     "uri": {"type": "string"}}}},
        },
        "backend": {"type": ["array", "null"], "items": {"type": ["string", "null"]}},
    },
}


def validate(task_input: Mapping[str, Any], settings: Settings) -> None:
    """The method must be enabled, and a web-download URI pass the URL filter."""
    imports.check_method(task_input["import_req"], settings)


def main(ctx: contract.ScriptContext) -> contract.JsonObject:
    image_id = ctx.task_input["image_id"]
    method = ctx.task_input["import_req"]["method"]
    try:
        _begin(ctx, image_id, method["name"])
        try:
            _import(ctx, image_id, method)
        except BaseException as exc:
            _revert(ctx, image_id)
            if not isinstance(exc, Exception):
                raise
            raise _failure(ctx, image_id, method, exc) from exc
    finally:
        _quietly(ctx, "release the import lock of", image_id, ctx.db_api.release_import_lock)
    return {"image_id": image_id}


def cleanup(ctx: contract.ScriptContext) -> None:
    """Undo what an unfinished run left, without deleting the user's image.

    Before a re-run (a lost worker, a retry) only the work files go: the image stays
    ``importing`` under this task's lock and the staged data stays, for the next run. Once the
    task has failed without a runner (worker lost for good, glint restarted mid-run), Glance's
    revert follows too: the image back to ``queued``, bytes nothing records removed, the lock
    released.
    """
    intake.remove_work_files(ctx.settings, ctx.task_id)
    if ctx.db_api.get_task()["status"] not in ("success", "failure"):
        return
    image_id = ctx.task_input["image_id"]
    try:
        image = ctx.db_api.get_image(image_id)
    except errors.NotFound:
        return
    if image.get(imports.LOCK) != ctx.task_id:
        return  # another import owns the image now
    if image["status"] != image_states.ACTIVE:
        ctx.store_api.delete(image_id)  # the stores keep an image's bytes under its id
        _revert(ctx, image_id)
    _quietly(ctx, "release the import lock of", image_id, ctx.db_api.release_import_lock)


def _begin(ctx: contract.ScriptContext, image_id: str, method: str) -> None:
    """Check this task holds the lock; move the image to importing."""
    try:
        image = ctx.db_api.get_image(image_id)
    except errors.NotFound:
        raise errors.ScriptError(f"Image {image_id} no longer exists") from None
    if image.get(imports.LOCK) != ctx.task_id:
        raise errors.ScriptError(
            f"Image {image_id} is not locked for this task: imports start with "
            f"POST /v2/images/{image_id}/import")
    if image["status"] == image_states.IMPORTING:
        return  # an earlier run of this task got this far
    try:
        ctx.db_api.set_image_status(image_id, image_states.IMPORTING,
                                    expected=imports.NEEDED_STATUS[method])
    except errors.GlintError as exc:
        raise errors.ScriptError(f"Cannot import into image {image_id}: {exc.message}") from exc


def _import(ctx: contract.ScriptContext, image_id: str, method: Mapping[str, Any]) -> None:
    plan = _plan(ctx, image_id)
    with ctx.store_api.writer(image_id) as writer:
        outcome = _copy(ctx, image_id, method, plan, writer)
        location = writer.commit()
    digest = outcome.digest
    data = db_api.ImageData(location=location, size=digest.size, checksum=digest.checksum,
                            os_hash_algo=digest.hash_algo, os_hash_value=digest.hash_value,
                            disk_format=outcome.disk_format, virtual_size=outcome.virtual_size)
    try:
        ctx.db_api.set_image_data(image_id, data, from_status=image_states.IMPORTING)
    except BaseException as exc:
        ctx.store_api.delete(location)  # set_image_data removes it too, on the errors it expects
        if isinstance(exc, errors.NotFound):
            raise errors.ScriptError(f"Image {image_id} was deleted during the import; "
                                     "its data was removed") from exc
        raise
    _quietly(ctx, "remove the staged data of", image_id, staging.area(ctx.settings).delete)


def _plan(ctx: contract.ScriptContext, image_id: str) -> intake.Plan:
    image = ctx.db_api.get_image(image_id)
    container_format = image.get("container_format")
    return intake.Plan(declared=image.get("disk_format"), what="the image's disk_format",
                       container_format=container_format,
                       decompress=ctx.settings.import_decompress
                       and container_format != "compressed",
                       conversion_format=ctx.settings.import_conversion_format)


def _copy(ctx: contract.ScriptContext, image_id: str, method: Mapping[str, Any],
          plan: intake.Plan, writer: StoreWriter) -> intake.Outcome:
    if method["name"] == imports.WEB_DOWNLOAD:
        with fetch.body(ctx, method["uri"]) as (chunks, length):
            return intake.take(ctx, plan, chunks, length, writer)
    staged = staging.area(ctx.settings)
    try:
        size = staged.size(image_id)
    except errors.StoreError:
        raise errors.ScriptError(f"Image {image_id} has no staged data: stage it again with "
                                 f"PUT /v2/images/{image_id}/stage") from None
    return intake.take(ctx, plan, staged.read(image_id), size, writer)


def _revert(ctx: contract.ScriptContext, image_id: str) -> None:
    """Glance's revert: the image back to queued, its staged data gone."""
    with contextlib.suppress(errors.NotFound, errors.Conflict):  # deleted or moved on meanwhile
        ctx.db_api.set_image_status(image_id, image_states.QUEUED,
                                    expected=image_states.IMPORTING, size=None,
                                    virtual_size=None)
    _quietly(ctx, "remove the staged data of", image_id, staging.area(ctx.settings).delete)
    intake.remove_work_files(ctx.settings, ctx.task_id)


def _failure(ctx: contract.ScriptContext, image_id: str, method: Mapping[str, Any],
             exc: Exception) -> errors.ScriptError:
    source = method.get("uri") or f"the data staged for image {image_id}"
    return fetch.failure(ctx, str(source), exc)


def _quietly(ctx: contract.ScriptContext, what: str, image_id: str,
             action: Callable[[str], object]) -> None:
    try:
        action(image_id)
    except Exception:  # keep the import's own outcome as the task's
        ctx.logger.exception("could not %s image %s", what, image_id)
