"""The ``export`` task script: stream an image's data out of glint, converted if asked.

Input::

    {"image_id": "<an active image the task's creator may see>",
     "export_to": "file:///srv/exports/cirros.qcow2",    # or an http(s) URL that takes a PUT
     "export_format": "qcow2"}                          # optional; default: as stored

Where the data may go is :mod:`glint.scripts.export_targets`'s business: files only under
``export_allowed_dirs`` and never over an existing file; URLs only where the import URL filter
lets glint go. Both are checked when the task is created (400) and again when it runs.

Every byte sent passes the safety gate (``ctx.image_gate``, :mod:`glint.gate`) first, as in
an upload: data that is not its ``disk_format`` or is unsafe is not exported, and the stream
ends in an error before a file target is published. With ``export_format`` other than the
image's ``disk_format``, the gate converts the data with ``qemu-img convert`` into a scratch
directory under ``work_dir``, which is removed afterwards, and the converted file is what is
sent. Images whose ``container_format`` is not ``bare`` are never converted.

The result says where the data went and describes the bytes written: ``size``, the md5
``checksum`` and the ``os_hash_value`` multihash (``os_hash_algo``: the ``hashing_algorithm``
setting), so the receiver can check what it got.

Re-runs (a lost worker) and cancellation go through ``cleanup``: it removes the temporary file
and scratch directory an earlier run of the task left, and the target file if that run had
published it (a file anyone else wrote is left alone).
"""

from __future__ import annotations

import contextlib
import pathlib
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from glint import errors, qemu_img
from glint.scripts import contract, export_targets

DESCRIPTION = "Copy an image's data to a file or an http(s) URL, converting its format if asked."

INPUT_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["image_id", "export_to"],
    "properties": {
        "image_id": {"type": "string", "minLength": 1, "maxLength": 36,
                     "description": "the image to export"},
        "export_to": {"type": "string", "minLength": 1, "maxLength": 8192,
                      "description": "file:///path under an allowed directory, or an "
                                     "http(s) URL that accepts a PUT"},
        "export_format": {"type": "string", "minLength": 1,
                          "description": "disk format to write (default: the image's own)"},
    },
    "additionalProperties": False,
}
READ_SIZE = 1024 * 1024


def validate(task_input: Mapping[str, Any], settings: contract.ScriptSettings) -> None:
    """Refuse at create time a target glint may not write to, or a format it cannot write."""
    export_targets.parse(task_input["export_to"], settings)
    export_format = task_input.get("export_format")
    if export_format is not None:
        if export_format not in settings.disk_formats:
            raise errors.BadRequest(f"Invalid export_format {export_format!r}: must be one of "
                                    f"{', '.join(settings.disk_formats)}")
        qemu_img.output_format(export_format)


def main(ctx: contract.ScriptContext) -> contract.JsonObject:
    """Send the image's (converted) bytes to the target; describe what was written."""
    target = export_targets.parse(ctx.task_input["export_to"], ctx.settings)
    image, copy = ctx.open_image(ctx.task_input["image_id"], "export", "exported")
    disk_format = ctx.task_input.get("export_format") or image["disk_format"]
    with _data(ctx, image, copy, disk_format) as (chunks, length):
        digest = target.send(ctx, chunks, length)
    ctx.logger.info("exported image %s to %s (%s, %d bytes)", image["id"], target.url,
                    disk_format, digest.size)
    return {"image_id": image["id"], "export_to": target.url, "disk_format": disk_format,
            "size": digest.size, "checksum": digest.checksum,
            "os_hash_algo": digest.hash_algo, "os_hash_value": digest.hash_value}


@contextlib.contextmanager
def _data(ctx: contract.ScriptContext, image: Mapping[str, Any], copy: contract.ImageCopy,
          disk_format: str) -> Iterator[tuple[Iterable[bytes], int | None]]:
    """The bytes to send and their length: the stored ones, or a converted copy."""
    gate = ctx.image_gate
    if disk_format == image["disk_format"]:
        yield (gate.stream(copy.read(), image["disk_format"],
                           image["container_format"]), image["size"])
        return
    work = _work_dir(ctx)
    try:
        source = _local_copy(ctx, copy, work)
        converted = work / "converted"
        gate.convert(source, image["disk_format"], disk_format, converted,
                     container_format=image["container_format"],
                     should_cancel=ctx.should_cancel)
        yield _file_chunks(converted), converted.stat().st_size
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _work_dir(ctx: contract.ScriptContext) -> pathlib.Path:
    root = ctx.settings.effective_work_dir
    root.mkdir(parents=True, exist_ok=True)
    return pathlib.Path(tempfile.mkdtemp(prefix=f"export-{ctx.task_id}-", dir=root))


def _local_copy(ctx: contract.ScriptContext, copy: contract.ImageCopy,
                work: pathlib.Path) -> pathlib.Path:
    """A file qemu-img can read: the store's own file when it has one, else a copy."""
    path = copy.store.local_path(copy.location)
    if path is not None:
        return path
    local = work / "source"
    with local.open("wb") as out:
        for chunk in copy.read():
            if ctx.should_cancel():
                raise errors.ScriptError("Export cancelled: glint is stopping")
            out.write(chunk)
    return local


def _file_chunks(path: pathlib.Path) -> Iterator[bytes]:
    with path.open("rb", buffering=0) as handle:
        while chunk := handle.read(READ_SIZE):
            yield chunk


def cleanup(ctx: contract.ScriptContext) -> None:
    """Before a re-run or after a cancel: remove what earlier runs of this task left, the
    partial (or published but unrecorded) target file and the conversion's scratch space."""
    removed = export_targets.remove_partial(ctx.task_input["export_to"], ctx.settings,
                                            ctx.task_id)
    if removed:
        ctx.logger.info("removed %d file(s) an earlier run of task %s left", removed, ctx.task_id)
    root = ctx.settings.effective_work_dir
    if root.is_dir():
        for scratch in root.glob(f"export-{ctx.task_id}-*"):
            shutil.rmtree(scratch, ignore_errors=True)
