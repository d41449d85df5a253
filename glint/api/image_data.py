"""``GET /v2/images/{id}/file``: image bytes streamed from the store, whole or one byte range.

(Data in, ``PUT .../file`` and ``PUT .../stage``, is :mod:`glint.api.image_upload`.)

The store is read chunk by chunk in the thread pool (Starlette iterates a sync iterator there),
so an image is never held in memory.
"""

from __future__ import annotations

import re

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute

from glint import errors
from glint.api import identity, image_upload
from glint.api.images import image_id
from glint.api.routing import resource
from glint.images.service import ImageService
from glint.images.uploads import Uploads

OCTET_STREAM = "application/octet-stream"
_RANGE = re.compile(r"^\s*bytes\s*=\s*(\d{0,19})\s*-\s*(\d{0,19})\s*$", re.IGNORECASE)


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """``(first, last)`` byte positions (inclusive) a ``Range`` header asks for.

    None means serve everything: no header, or one this does not parse (several ranges, other
    units), which RFC 9110 lets a server ignore. A well-formed range that starts past the end
    is RangeNotSatisfiable.
    """
    match = _RANGE.match(header) if header else None
    if match is None or match.group(1) == match.group(2) == "":
        return None
    first, last = match.group(1), match.group(2)
    if first == "":  # suffix: the last N bytes
        length = int(last)
        if length == 0 or size == 0:
            raise errors.RangeNotSatisfiable(f"Requested range not satisfiable: {header}",
                                             size=size)
        return max(0, size - length), size - 1
    start = int(first)
    if last and int(last) < start:  # invalid, so ignored
        return None
    if start >= size:
        raise errors.RangeNotSatisfiable(f"Requested range not satisfiable: {header}", size=size)
    return start, min(int(last), size - 1) if last else size - 1


class ImageDataApi:
    def __init__(self, images: ImageService) -> None:
        self.images = images

    def download(self, request: Request) -> Response:
        ctx = identity.context(request)
        wanted = image_id(request)
        header = request.headers.get("range")
        if header:
            size = self.images.get(ctx, wanted).size
            span = byte_range(header, size) if size is not None else None
            if span is not None:
                return self._partial(request, wanted, span, size or 0)
        image, stream = self.images.open_data(ctx, wanted)
        if stream is None:
            return Response(status_code=204)
        headers = {}
        if image.size is not None:
            headers["Content-Length"] = str(image.size)
        if image.checksum:
            headers["Content-MD5"] = image.checksum
        return StreamingResponse(stream, media_type=OCTET_STREAM, headers=headers)

    def _partial(self, request: Request, wanted: str, span: tuple[int, int],
                 size: int) -> Response:
        first, last = span
        length = last - first + 1
        _image, stream = self.images.open_data(identity.context(request), wanted, first, length)
        if stream is None:
            return Response(status_code=204)
        # No Content-MD5 here: it would describe the whole image, not this body.
        headers = {"Content-Length": str(length), "Content-Range": f"bytes {first}-{last}/{size}"}
        return StreamingResponse(stream, status_code=206, media_type=OCTET_STREAM,
                                 headers=headers)


def routes(images: ImageService) -> list[BaseRoute]:
    api = ImageDataApi(images)
    upload = image_upload.ImageUploadApi(Uploads(images))
    return [resource("/v2/images/{image_id}/file", {"GET": api.download, "PUT": upload.upload}),
            resource("/v2/images/{image_id}/stage", {"PUT": upload.stage})]
