"""The ``import`` task script: create an image from the bytes at an http(s) URL.

Input, as Glance's legacy ``import`` task takes it::

    {"import_from": "https://example.org/cirros.qcow2",
     "import_from_format": "qcow2",
     "image_properties": {"name": "cirros", "container_format": "bare"}}

All three keys are required (400 when the task is created). Optional keys:
``"decompress": true`` (gunzip / unxz / unzstd the data first; setting ``import_decompress``)
and ``"conversion_format": "raw"`` (convert with qemu-img; setting ``import_conversion_format``).

Reachability: the URL passes the import URL filter (:mod:`glint.urlfilter`) when the task is
created and again on every redirect hop, and every connection goes only to addresses the
filter checked after resolving the host (:mod:`glint.scripts.fetch` does the fetching).

Formats: the data must be in ``import_from_format``, as oslo.utils' format inspector sees it,
and pass its safety checks (:mod:`glint.inspection`); ``virtual_size`` comes from it. Without
conversion the image's ``disk_format`` is ``import_from_format``; with one it is the
conversion format, and size and checksums describe the converted bytes
(:mod:`glint.scripts.intake`). ``image_properties`` may repeat that disk format or leave it out;
naming another is refused (400). ``container_format`` defaults to ``bare``.

The image goes ``queued → importing → active``; the task's result is ``{"image_id": ...}``.
If anything fails, the image is deleted and no bytes stay in the store (not even a temporary
file, nor a work file of the conversion), and the task's message says what went wrong.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from glint import errors, qemu_img, urlfilter
from glint.scripts import contract, fetch, intake

DESCRIPTION = "Create an image from the data at an http(s) URL (Glance's legacy import task)."

INPUT_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["import_from", "import_from_format", "image_properties"],
    "properties": {
        "import_from": {"type": "string", "minLength": 1, "maxLength": 8192,
                        "description": "http(s) URL of the image data"},
        "import_from_format": {"type": "string", "minLength": 1,
                               "description": "disk format of the data at the URL"},
        "image_properties": {"type": "object",
                             "description": "attributes and properties of the new image"},
        "decompress": {"type": "boolean",
                       "description": "decompress gzip, xz or zstd data before storing it"},
        "conversion_format": {"type": ["string", "null"],
                              "enum": [*qemu_img.OUTPUT_FORMATS, None],
                              "description": "disk format to convert the data to"},
    },
}

def validate(task_input: Mapping[str, Any], settings: contract.ScriptSettings) -> None:
    """Refuse at create time what could never succeed: a filtered URL, a bad format."""
    urlfilter.UrlFilter.from_settings(settings).check(task_input["import_from"])
    source_format = task_input["import_from_format"]
    if source_format not in settings.disk_formats:
        raise errors.BadRequest(f"Invalid import_from_format {source_format!r}: must be one of "
                                f"{', '.join(settings.disk_formats)}")
    plan = _plan(task_input, settings)
    stored = plan.conversion_format if plan.converts else source_format
    disk_format = task_input["image_properties"].get("disk_format")
    if disk_format is not None and disk_format != stored:
        how = (f"converted to {stored!r}" if plan.converts
               else f"stored as it is ({stored!r}); glint does not convert it unless "
                    "conversion_format is given")
        raise errors.BadRequest(
            f"image_properties.disk_format {disk_format!r} differs from the disk format of the "
            f"stored data: the data is {how}")
    if stored not in settings.disk_formats:
        raise errors.BadRequest(f"Invalid conversion_format {stored!r}: must be one of "
                                f"{', '.join(settings.disk_formats)}")


def _plan(task_input: Mapping[str, Any], settings: contract.ScriptSettings) -> intake.Plan:
    conversion = task_input.get("conversion_format", settings.import_conversion_format)
    return intake.Plan(declared=task_input["import_from_format"], what="import_from_format",
                       container_format=task_input["image_properties"].get("container_format"),
                       decompress=task_input.get("decompress", settings.import_decompress),
                       conversion_format=conversion)


def main(ctx: contract.ScriptContext) -> contract.JsonObject:
    """Create the image, copy the URL's bytes into the store, activate it; clean up on failure."""
    url = ctx.task_input["import_from"]
    try:
        image = ctx.db_api.create_image(_image_values(ctx.task_input))
    except errors.GlintError as exc:
        raise errors.ScriptError(f"Could not create the image: {exc.message}") from exc
    image_id = image["id"]
    try:
        ctx.db_api.set_image_status(image_id, contract.ImageStatus.IMPORTING,
                                    expected=contract.ImageStatus.QUEUED)
        _import(ctx, image_id, url)
    except BaseException as exc:
        _discard(ctx, image_id)
        if not isinstance(exc, Exception):
            raise
        raise fetch.failure(ctx, url, exc) from exc
    return {"image_id": image_id}


def _discard(ctx: contract.ScriptContext, image_id: str) -> None:
    try:
        ctx.db_api.discard_image(image_id)
    except Exception:  # keep the import's own error as the task's message
        ctx.logger.exception("could not discard image %s after a failed import", image_id)


def _image_values(task_input: Mapping[str, Any]) -> dict[str, Any]:
    values = dict(task_input["image_properties"])
    values["disk_format"] = task_input["import_from_format"]
    values["container_format"] = values.get("container_format") or "bare"
    return values


def _import(ctx: contract.ScriptContext, image_id: str, url: str) -> None:
    """Stream ``url`` into the store and record the data on the image (which activates it)."""
    plan = _plan(ctx.task_input, ctx.settings)
    with ctx.store_api.writer(image_id) as writer:
        with fetch.body(ctx, url) as (chunks, length):
            outcome = intake.take(ctx, plan, chunks, length, writer)
        location = writer.commit()
    digest = outcome.digest
    data = contract.ImageData(location=location, size=digest.size, checksum=digest.checksum,
                            os_hash_algo=digest.hash_algo, os_hash_value=digest.hash_value,
                            disk_format=outcome.disk_format, virtual_size=outcome.virtual_size)
    try:
        ctx.db_api.set_image_data(image_id, data, from_status=contract.ImageStatus.IMPORTING)
    except BaseException:
        ctx.store_api.delete(location)  # set_image_data removes it too, on the errors it expects
        raise


# The fetching code moved to glint.scripts.fetch; these names stay for existing callers.
_transport = fetch.transport
_Backend = fetch.Backend


def cleanup(ctx: contract.ScriptContext) -> None:
    """Before a re-run (a lost worker, a retry) or after a cancel: discard the image an earlier
    run of this task created, with its bytes, so the re-run starts clean and no image is left
    twice. A run that was not linked to an image yet left none."""
    intake.remove_work_files(ctx.settings, ctx.task_id)
    image_id = ctx.db_api.task_image_id()
    if image_id is not None:
        ctx.db_api.discard_image(image_id)
        # A run killed after its store write committed but before the image recorded it left
        # bytes no image points at. The shipped stores commit a writer for an image under the
        # image's id, so that is where they are (a missing location is not an error).
        ctx.store_api.delete(image_id)
