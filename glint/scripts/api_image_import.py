"""The ``api_image_import`` task script: data into an existing image, Glance's interoperable import.

Created by ``POST /v2/images/{id}/import`` (:mod:`glint.imports.service`), which took the
image's import lock for this task first. Input, as Glance's::

    {"image_id": "<uuid>",
     "import_req": {"method": {"name": "web-download", "uri": "https://..."}},
     "backend": ["filesystem"]}

``glance-direct`` copies the data staged by ``PUT /v2/images/{id}/stage`` (the image is
``uploading``); ``glance-download`` reads an image of another Glance region as the caller
(:mod:`glint.scripts.glance_download`); ``web-download`` fetches the URI (the image is
``queued``), through the same URL filter and fetching code as the ``import`` script
(:mod:`glint.scripts.fetch`), straight into the store. Either way the image goes
``importing → active``, with md5 and the multihash computed in the one pass that writes the
store.

On the way the data is checked as Glance's conversion plugin checks it
(:mod:`glint.scripts.intake`): it must be in the image's ``disk_format`` (for container format
``bare``) and pass the format inspector's safety checks; ``virtual_size`` comes from the
inspector. The settings ``import_decompress`` (not for container format ``compressed``) and
``import_conversion_format`` apply here too; a conversion changes the image's ``disk_format``.

With multi-store (``enabled_backends``) the input's ``backend`` names the stores: the data
goes to the first and is copied, md5-checked, to the others; ``os_glance_importing_to_stores``
and ``os_glance_failed_import`` follow the progress, and ``all_stores_must_succeed`` says
whether one store failing fails the import (:func:`_import`). ``copy-image`` copies an active
image's bytes to more stores, skipping those that hold them (:func:`_copy_image`).

On failure the image goes back to ``queued`` (Glance's revert), its staged data and any partly
written bytes are removed, and the task fails saying why. The lock is released in every case.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from typing import Any

from glint import errors
from glint.imports import methods as imports
from glint.scripts import contract, fetch, glance_download, intake

DESCRIPTION = ("Import data into an existing image: glance-direct (staged data), "
               "web-download, glance-download or copy-image "
               "(POST /v2/images/{id}/import).")

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


def validate(task_input: Mapping[str, Any], settings: contract.ScriptSettings) -> None:
    """The method must be enabled, and a web-download URI pass the URL filter."""
    imports.check_method(task_input["import_req"], settings)


def main(ctx: contract.ScriptContext) -> contract.JsonObject:
    image_id = ctx.task_input["image_id"]
    method = ctx.task_input["import_req"]["method"]
    targets = _targets(ctx)
    source: glance_download.Source | None = None
    try:
        _begin(ctx, image_id, method["name"], targets)
        try:
            if method["name"] == imports.COPY_IMAGE:
                _copy_image(ctx, image_id, targets)
            else:
                if method["name"] == imports.GLANCE_DOWNLOAD:
                    source = glance_download.prepare(ctx, image_id, method)
                _import(ctx, image_id, method, targets, source)
        except BaseException as exc:
            if method["name"] != imports.COPY_IMAGE:
                _revert(ctx, image_id)
            if source is not None:
                _quietly(ctx, "restore the formats and properties of", image_id,
                         lambda i: glance_download.restore(ctx, i, source))
            if ctx.stores.multi:  # the stores left to do failed with the import
                _quietly(ctx, "record the failed stores of", image_id, lambda i: (
                    ctx.db_api.import_progress(i, failed=ctx.db_api.importing_stores(i))))
            if not isinstance(exc, Exception):
                raise
            raise _failure(ctx, image_id, method, exc) from exc
    finally:
        _quietly(ctx, "release the import lock of", image_id, ctx.db_api.release_import_lock)
    return {"image_id": image_id}


def _targets(ctx: contract.ScriptContext) -> list[str | None]:
    """The stores to import to (the task's ``backend``); [None], the one store, without
    multi-store."""
    backends = ctx.stores
    if not backends.multi:
        return [None]
    named = ctx.task_input.get("backend") or [None]
    return list(dict.fromkeys(backends.resolve(s) for s in named))


def _must_succeed(ctx: contract.ScriptContext) -> bool:
    return bool(ctx.task_input["import_req"].get("all_stores_must_succeed", True))


def cleanup(ctx: contract.ScriptContext) -> None:
    """Undo what an unfinished run left, without deleting the user's image.

    Before a re-run (a lost worker, a retry) only the work files go: the image stays
    ``importing`` under this task's lock and the staged data stays, for the next run. Once the
    task has failed without a runner (worker lost for good, glint restarted mid-run), Glance's
    revert follows too: the image back to ``queued``, bytes nothing records removed, the lock
    released.
    """
    intake.remove_work_files(ctx.settings, ctx.task_id)
    if ctx.db_api.get_task()["status"] not in (contract.TaskStatus.SUCCESS,
                                               contract.TaskStatus.FAILURE):
        return
    image_id = ctx.task_input["image_id"]
    try:
        image = ctx.db_api.get_image(image_id)
    except errors.NotFound:
        return
    if image.get(imports.LOCK) != ctx.task_id:
        return  # another import owns the image now
    backends = ctx.stores
    held = {backends.resolve(s) for s, _location in ctx.db_api.get_image_locations(image_id)}
    for store_id in _targets(ctx):  # the stores keep an image's bytes under its id
        if backends.resolve(store_id) not in held or image["status"] != contract.ImageStatus.ACTIVE:
            backends.backend(store_id).delete(image_id)
    if image["status"] != contract.ImageStatus.ACTIVE:
        _revert(ctx, image_id)
    _quietly(ctx, "release the import lock of", image_id, ctx.db_api.release_import_lock)


def _begin(ctx: contract.ScriptContext, image_id: str, method: str,
           targets: list[str | None]) -> None:
    """Check this task holds the lock; record the stores to do; move the image to importing
    (not for copy-image: the image stays active)."""
    try:
        image = ctx.db_api.get_image(image_id)
    except errors.NotFound:
        raise errors.ScriptError(f"Image {image_id} no longer exists") from None
    if image.get(imports.LOCK) != ctx.task_id:
        raise errors.ScriptError(
            f"Image {image_id} is not locked for this task: imports start with "
            f"POST /v2/images/{image_id}/import")
    if ctx.stores.multi:
        ctx.db_api.import_progress(image_id, start=[str(t) for t in targets])
    if method == imports.COPY_IMAGE:
        if image["status"] != contract.ImageStatus.ACTIVE:
            raise errors.ScriptError(f"Cannot copy image {image_id}: it is {image['status']}")
        return
    if image["status"] == contract.ImageStatus.IMPORTING:
        return  # an earlier run of this task got this far
    try:
        ctx.db_api.set_image_status(image_id, contract.ImageStatus.IMPORTING,
                                    expected=imports.NEEDED_STATUS[method])
    except errors.GlintError as exc:
        raise errors.ScriptError(f"Cannot import into image {image_id}: {exc.message}") from exc


def _import(ctx: contract.ScriptContext, image_id: str, method: Mapping[str, Any],
            targets: list[str | None], source: glance_download.Source | None = None) -> None:
    """Write the data to the first store, copy it to the others. With
    ``all_stores_must_succeed`` (the default) the image is active once every store has it,
    and any failure undoes all; without, it is active after the first store, and a store
    that fails is listed in ``os_glance_failed_import``."""
    backends = ctx.stores
    plan = _plan(ctx, image_id)
    must_succeed = _must_succeed(ctx) or not backends.multi
    written: list[tuple[str | None, str]] = []
    outcome: intake.Outcome | None = None
    last_error: Exception | None = None
    for store_id in targets:
        try:
            location, outcome = _write(ctx, image_id, method, plan, store_id, written, outcome,
                                       source)
            written.append((store_id, location))
            if not must_succeed:
                _record(ctx, image_id, outcome, written, activate=len(written) == 1)
        except Exception as exc:
            if must_succeed:
                _delete(backends, written)
                raise
            if written and written[-1][0] == store_id:  # _record removed its bytes
                written.pop()
            outcome = outcome if written else None  # the next store re-reads the source
            ctx.logger.warning("import of image %s to store %s failed: %s", image_id,
                               store_id, exc)
            ctx.db_api.import_progress(image_id, failed=[str(store_id)])
            last_error = exc
            continue
        if backends.multi:
            ctx.db_api.import_progress(image_id, done=str(store_id))
    if must_succeed:
        assert outcome is not None
        _record(ctx, image_id, outcome, written, activate=True)
    elif not written:
        assert last_error is not None
        raise last_error
    _quietly(ctx, "remove the staged data of", image_id, ctx.stores.staging.delete)


def _write(ctx: contract.ScriptContext, image_id: str, method: Mapping[str, Any],
           plan: intake.Plan, store_id: str | None, written: list[tuple[str | None, str]],
           outcome: intake.Outcome | None,
           source: glance_download.Source | None = None) -> tuple[str, intake.Outcome]:
    """The data into ``store_id``: from the source into the first store, then copied from
    the first store (checked against its md5); the location and the source's outcome."""
    backends = ctx.stores
    if outcome is None or not written:
        with backends.backend(store_id).writer(image_id) as writer:
            outcome = _copy(ctx, image_id, method, plan, writer, source,
                            backends.resolve(store_id))
            return writer.commit(), outcome
    first_store, first_location = written[0]
    return backends.copy(first_store, first_location, store_id, image_id,
                         outcome.digest.checksum, ctx.should_cancel), outcome


def _record(ctx: contract.ScriptContext, image_id: str, outcome: intake.Outcome,
            written: list[tuple[str | None, str]], activate: bool) -> None:
    """Activate the image with what ``written`` holds, or add the last store's copy."""
    if not activate:
        store_id, location = written[-1]
        ctx.db_api.add_image_location(image_id, str(store_id), location)
        return
    digest = outcome.digest
    (store, location), *copies = written
    data = contract.ImageData(location=location, size=digest.size, checksum=digest.checksum,
                            os_hash_algo=digest.hash_algo, os_hash_value=digest.hash_value,
                            disk_format=outcome.disk_format, virtual_size=outcome.virtual_size,
                            store=store, copies=tuple((str(s), loc) for s, loc in copies))
    try:
        ctx.db_api.set_image_data(image_id, data, from_status=contract.ImageStatus.IMPORTING)
    except BaseException as exc:
        _delete(ctx.stores, written)  # set_image_data removes them too, on the errors
        if isinstance(exc, errors.NotFound):  # it expects
            raise errors.ScriptError(f"Image {image_id} was deleted during the import; "
                                     "its data was removed") from exc
        raise


def _copy_image(ctx: contract.ScriptContext, image_id: str,
                targets: list[str | None]) -> None:
    """copy-image: the active image's bytes to more stores, each copy checked against the
    image's checksum; stores that hold it already are skipped."""
    backends = ctx.stores
    image = ctx.db_api.get_image(image_id)
    checksum = image.get("checksum")
    held = {backends.resolve(s): loc for s, loc in ctx.db_api.get_image_locations(image_id)}
    source = next(((s, loc) for s, loc in held.items() if s in backends.backends), None)
    if source is None:
        raise errors.ScriptError(f"Image {image_id} has no data in a configured store")
    copied: list[str] = []
    for store_id in [str(t) for t in targets]:
        if store_id not in held:
            try:
                location = backends.copy(
                    source[0], source[1], store_id, image_id, checksum, ctx.should_cancel,
                    check=lambda chunks: ctx.image_gate.stream(
                        chunks, image.get("disk_format"), image.get("container_format")))
                ctx.db_api.add_image_location(image_id, store_id, location)
            except Exception as exc:
                if _must_succeed(ctx):
                    for done in copied:
                        ctx.db_api.remove_image_location(image_id, done)
                    raise
                ctx.logger.warning("copy of image %s to store %s failed: %s", image_id,
                                   store_id, exc)
                ctx.db_api.import_progress(image_id, failed=[store_id])
                continue
            copied.append(store_id)
        ctx.db_api.import_progress(image_id, done=store_id)


def _delete(backends: contract.Stores, written: list[tuple[str | None, str]]) -> None:
    for store_id, location in written:
        backends.backend(store_id).delete(location)


def _plan(ctx: contract.ScriptContext, image_id: str) -> intake.Plan:
    image = ctx.db_api.get_image(image_id)
    container_format = image.get("container_format")
    return intake.Plan(declared=image.get("disk_format"), what="the image's disk_format",
                       container_format=container_format,
                       decompress=ctx.settings.import_decompress
                       and container_format != "compressed",
                       conversion_format=ctx.settings.import_conversion_format)


def _copy(ctx: contract.ScriptContext, image_id: str, method: Mapping[str, Any],
          plan: intake.Plan, writer: contract.StoreWriter,
          source: glance_download.Source | None = None,
          store: str | None = None) -> intake.Outcome:
    if source is not None:
        with glance_download.body(ctx, source) as (chunks, length):
            outcome = intake.take(ctx, plan, chunks, length, writer, store)
        if not plan.decompress and plan.conversion_format is None:
            glance_download.check_data(source, outcome.digest.checksum)
        return outcome
    if method["name"] == imports.WEB_DOWNLOAD:
        with fetch.body(ctx, method["uri"]) as (chunks, length):
            return intake.take(ctx, plan, chunks, length, writer, store)
    staged = ctx.stores.staging
    try:
        size = staged.size(image_id)
    except errors.StoreError:
        raise errors.ScriptError(f"Image {image_id} has no staged data: stage it again with "
                                 f"PUT /v2/images/{image_id}/stage") from None
    return intake.take(ctx, plan, staged.read(image_id), size, writer, store)


def _revert(ctx: contract.ScriptContext, image_id: str) -> None:
    """Glance's revert: the image back to queued, its staged data gone."""
    with contextlib.suppress(errors.NotFound, errors.Conflict):  # deleted or moved on meanwhile
        ctx.db_api.set_image_status(image_id, contract.ImageStatus.QUEUED,
                                    expected=contract.ImageStatus.IMPORTING, size=None,
                                    virtual_size=None)
    _quietly(ctx, "remove the staged data of", image_id, ctx.stores.staging.delete)
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
