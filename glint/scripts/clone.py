"""The ``clone`` task script: a new image with another image's data and metadata.

Input::

    {"image_id": "<an active image the task's creator may see>",
     "image_properties": {"name": "my copy"}}    # optional overrides

The clone gets the source's attributes, tags and extra properties except what must be its own:
a new ``id``, the caller's project as ``owner``, new ``created_at``/``updated_at``, its own data
location and status; glint's ``os_glance_*`` properties are not copied. A ``public`` source
cloned by a non-admin becomes ``shared`` (Glance's policy keeps publishing for admins).
``image_properties`` then apply on top, under the same rules as ``POST /v2/images``.

The data is copied the cheapest safe way the store offers (:class:`glint.scripts.contract.
CopyingStore`: ``copy_file_range`` on the filesystem store, a reflink where the filesystem
shares extents), then read back and checked against the source's ``size``, ``checksum`` and
``os_hash_value``; stores without a copy stream it through a writer, checked as it goes.
Data that does not match fails the task: the source's stored bytes are not what its record
says, and a clone would spread the damage.

The image goes ``queued → importing → active``; the result is ``{"image_id": ...}``. On any
failure the new image and its bytes are removed; a run that could not do so itself (its worker
was killed) is cleaned up by ``cleanup`` before the task runs again or is given up.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from glint import datapath, errors
from glint.images import attributes
from glint.scripts import contract

DESCRIPTION = "Create a new image with another image's data and metadata."

INPUT_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["image_id"],
    "properties": {
        "image_id": {"type": "string", "minLength": 1, "maxLength": 36,
                     "description": "the image to clone"},
        "image_properties": {"type": "object",
                             "description": "attributes and properties that differ from the "
                                            "source's"},
    },
    "additionalProperties": False,
}

# What the clone never takes from its source.
NOT_COPIED = attributes.READ_ONLY | attributes.RESERVED | {"id", "owner"}


def validate(task_input: Mapping[str, Any], settings: contract.ScriptSettings) -> None:
    """Refuse overrides no image could have (400), before a task exists."""
    for key, value in (task_input.get("image_properties") or {}).items():
        try:
            attributes.check_name(key)
        except errors.Forbidden as exc:
            raise errors.BadRequest(f"image_properties: {exc.message}") from None
        if key == "tags":
            attributes.tag_list(value)
        elif key in attributes.SETTABLE:
            attributes.base_value(key, value, settings)
        else:
            attributes.extra_value(key, value)


def main(ctx: contract.ScriptContext) -> contract.JsonObject:
    """Create the clone, copy and check the data, activate it; remove it on failure."""
    source, copy = ctx.open_image(ctx.task_input["image_id"], "clone", "cloned")
    values = clone_values(source, ctx.task_input.get("image_properties") or {},
                          ctx.request_context)
    try:
        image_id = ctx.db_api.create_image(values)["id"]
    except errors.GlintError as exc:
        raise errors.ScriptError(f"Could not create the clone of image {source['id']}: "
                                 f"{exc.message}") from exc
    try:
        ctx.db_api.set_image_status(image_id, contract.ImageStatus.IMPORTING,
                                    expected=contract.ImageStatus.QUEUED,
                                    virtual_size=source["virtual_size"])
        _record(ctx, image_id, _copy(ctx, source, copy, image_id))
    except BaseException as exc:
        _discard(ctx, image_id)
        if not isinstance(exc, Exception):
            raise
        raise _failure(ctx, exc) from exc
    ctx.logger.info("cloned image %s as %s", source["id"], image_id)
    return {"image_id": image_id}


def cleanup(ctx: contract.ScriptContext) -> None:
    """Before a re-run (a lost worker, a retry) or after a cancel: discard the clone an earlier
    run created, with its bytes (committed or half-written), so no half-made clone stays and
    the re-run makes exactly one. The source image is never touched: only the image this task
    created is linked to it."""
    image_id = ctx.db_api.task_image_id()
    if image_id is None or image_id == ctx.task_input["image_id"]:
        return
    ctx.db_api.discard_image(image_id)
    # A run killed after its copy committed but before the image recorded it left bytes no
    # image points at; the shipped stores write a clone under its image's id (and delete
    # removes unfinished writes of that key too), in the store its source was read from.
    for store in ctx.stores.backends.values():
        store.delete(image_id)


def clone_values(source: Mapping[str, Any], overrides: Mapping[str, Any],
                 ctx: contract.RequestContext) -> dict[str, Any]:
    """``POST /v2/images`` values for a clone of ``source`` (an API view) made by ``ctx``."""
    values = {key: value for key, value in source.items()
              if key not in NOT_COPIED and not key.startswith(attributes.RESERVED_PREFIX)}
    if values.get("visibility") == "public" and not ctx.is_admin:
        values["visibility"] = "shared"
    values.update(overrides)
    return values


def _copy(ctx: contract.ScriptContext, source: Mapping[str, Any], copy: contract.ImageCopy,
          image_id: str) -> contract.ImageData:
    """Copy the source's bytes for ``image_id`` within the store holding them, checked
    against its record."""
    store, location = copy.store, copy.location
    algo = source["os_hash_algo"] or ctx.settings.hashing_algorithm
    if isinstance(store, contract.CopyingStore):
        new_location = store.copy(location, image_id)
        try:
            digest = _hash(ctx, _gated(ctx, source, store.read(new_location)), algo,
                           source["size"])
            _check(source, digest)
        except BaseException:
            store.delete(new_location)
            raise
    else:
        with store.writer(image_id) as writer:
            digest = _hash(ctx, _gated(ctx, source, store.read(location)), algo,
                           source["size"], writer)
            _check(source, digest)
            new_location = writer.commit()
    return contract.ImageData(location=new_location, size=digest.size, checksum=digest.checksum,
                            os_hash_algo=algo, os_hash_value=digest.hash_value,
                            store=copy.store_id if ctx.stores.multi else None)


def _gated(ctx: contract.ScriptContext, source: Mapping[str, Any],
           chunks: Iterable[bytes]) -> Iterable[bytes]:
    """The source's bytes through the safety gate: a clone trusts them no more than an upload."""
    return ctx.image_gate.stream(chunks, source["disk_format"], source["container_format"])


def _hash(ctx: contract.ScriptContext, chunks: Iterable[bytes], algo: str, size: int,
          writer: datapath.Writer | None = None) -> datapath.Digest:
    return datapath.copy(chunks, writer if writer is not None else _NoWriter(),
                         size_cap=ctx.settings.image_size_cap, hash_algo=algo,
                         progress=lambda done: ctx.report_progress(done, size),
                         should_cancel=ctx.should_cancel)


def _check(source: Mapping[str, Any], digest: datapath.Digest) -> None:
    found = {"size": digest.size, "checksum": digest.checksum,
             "os_hash_value": digest.hash_value}
    wrong = [key for key, value in found.items()
             if source[key] is not None and value != source[key]]
    if wrong:
        raise errors.ScriptError(f"The data of image {source['id']} does not match its record "
                                 f"({', '.join(wrong)} differ); no clone was made")


def _record(ctx: contract.ScriptContext, image_id: str, data: contract.ImageData) -> None:
    try:
        ctx.db_api.set_image_data(image_id, data, from_status=contract.ImageStatus.IMPORTING)
    except BaseException:
        # set_image_data removes it too, on the errors it expects
        ctx.stores.backend(data.store).delete(data.location)
        raise


def _discard(ctx: contract.ScriptContext, image_id: str) -> None:
    try:
        ctx.db_api.discard_image(image_id)
    except Exception:  # keep the clone's own error as the task's message
        ctx.logger.exception("could not discard image %s after a failed clone", image_id)


def _failure(ctx: contract.ScriptContext, exc: Exception) -> errors.ScriptError:
    if isinstance(exc, errors.ScriptError):
        return exc
    if isinstance(exc, errors.GlintError):
        return errors.ScriptError(exc.message)
    if isinstance(exc, OSError):  # from a store that does not say what it means
        return errors.ScriptError(f"Could not copy the image data: "
                                  f"{errors.store_error(exc).message}")
    ctx.logger.exception("clone failed with an unexpected error")
    return errors.ScriptError(f"Clone failed due to an internal error ({type(exc).__name__})")


class _NoWriter:
    """Where re-read bytes go when only their hashes are wanted."""

    def write(self, data: bytes | memoryview) -> None:
        pass
