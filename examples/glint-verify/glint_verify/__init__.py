"""The ``verify`` task: re-read an image's data from the store and check it against its record.

Input: ``{"image_id": "<an active image the task's creator may see>"}``.

Success: ``{"image_id", "verified": true, "size", "checksum", "os_hash_algo", "os_hash_value"}``
as read back from the store. Failure: the task's message names what differs, e.g.
``Image ... does not match its record: checksum (md5) differs``.
"""

from __future__ import annotations

import hashlib
from typing import Any

from glint import errors
from glint.scripts.contract import ImageCopy, ScriptContext

CONTRACT_VERSION = 1
DESCRIPTION = "Re-read an image's data and check its size, checksum and multihash."
INPUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["image_id"],
    "properties": {"image_id": {"type": "string", "minLength": 36, "maxLength": 36}},
    "additionalProperties": False,
}
MiB = 1024 * 1024


def main(ctx: ScriptContext) -> dict[str, Any]:
    """Read the image's bytes once, hashing them, and compare with the image record."""
    image_id = ctx.task_input["image_id"]
    image, copy = _image(ctx, image_id)
    found = _read(ctx, copy, image)
    wrong = [_describe(key, image) for key, value in found.items()
             if image[key] is not None and value != image[key]]
    if wrong:
        raise errors.ScriptError(f"Image {image_id} does not match its record: "
                                 f"{', '.join(wrong)} differ{'s' if len(wrong) == 1 else ''}")
    ctx.logger.info("image %s verified (%d bytes)", image_id, found["size"])
    return {"image_id": image_id, "verified": True, **found}


def _image(ctx: ScriptContext, image_id: str) -> tuple[dict[str, Any], ImageCopy]:
    """The image and the copy of its bytes to check (in whichever store holds it)."""
    try:
        image = ctx.db_api.get_image(image_id)  # NotFound unless the task's creator may see it
        copies = ctx.image_copies(image_id)
    except errors.NotFound as exc:
        raise errors.ScriptError(f"Cannot verify: {exc.message}") from exc
    if image["status"] != "active" or not copies:
        raise errors.ScriptError(f"Cannot verify image {image_id}: it is {image['status']} "
                                 "and has no data to check")
    return image, copies[0]


def _read(ctx: ScriptContext, copy: ImageCopy, image: dict[str, Any]) -> dict[str, Any]:
    md5 = hashlib.md5(usedforsecurity=False)
    algo = image["os_hash_algo"] or ctx.settings.hashing_algorithm
    multihash = hashlib.new(algo)
    size = 0
    for chunk in copy.read():
        if ctx.should_cancel():
            raise errors.ScriptError("glint is stopping; verification abandoned")
        md5.update(chunk)
        multihash.update(chunk)
        size += len(chunk)
        ctx.report_progress(size, image["size"], f"Verified {size // MiB} MiB")
    return {"size": size, "checksum": md5.hexdigest(), "os_hash_algo": algo,
            "os_hash_value": multihash.hexdigest()}


def _describe(key: str, image: dict[str, Any]) -> str:
    return {"size": "size", "checksum": "checksum (md5)", "os_hash_algo": "os_hash_algo",
            "os_hash_value": f"os_hash_value ({image['os_hash_algo']})"}[key]
