"""``PUT /v2/images/{id}/file`` and ``PUT /v2/images/{id}/stage``: image bytes in.

The handlers check what the headers alone can refuse (415, a bad or too large declared size)
and then stream the body into :class:`glint.images.uploads.Uploads` running in a worker thread
(:mod:`glint.api.streaming`). Both answer 204 once the data is recorded.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator

from starlette.requests import Request
from starlette.responses import Response

from glint import digits, errors
from glint.api import identity, streaming
from glint.api.images import image_id, media_type
from glint.context import RequestContext
from glint.images.uploads import Uploads

Receiver = Callable[[RequestContext, str, Iterator[bytes], int | None], object]
OCTET_STREAM = "application/octet-stream"
SIZE_HEADER = "x-openstack-image-size"
STORE_HEADER = "x-image-meta-store"  # multi-store: the backend to upload to


def declared_size(request: Request, size_cap: int) -> int | None:
    """``x-openstack-image-size`` (None when absent); 413 when it or the body passes the cap."""
    raw = request.headers.get(SIZE_HEADER)
    size = None
    if raw is not None:
        size = digits.parse(raw.strip(" \t"))
        if size is None:
            raise errors.BadRequest(f"Invalid {SIZE_HEADER} header {raw[:40]!r}: "
                                    "must be a number of bytes in ASCII digits")
    length = digits.parse(request.headers.get("content-length", ""))
    biggest = max(size or 0, length or 0)
    if biggest > size_cap:
        raise errors.TooLarge(f"Image data of {biggest} bytes exceeds the size cap of "
                              f"{size_cap} bytes")
    return size


class ImageUploadApi:
    def __init__(self, uploads: Uploads) -> None:
        self.uploads = uploads

    async def upload(self, request: Request) -> Response:
        """queued → saving → active; the image is back to queued if anything fails."""
        store = request.headers.get(STORE_HEADER)
        await self._receive(request, functools.partial(self.uploads.upload, store=store))
        return Response(status_code=204)

    async def stage(self, request: Request) -> Response:
        """queued → uploading, the data kept in the staging area for a glance-direct import."""
        await self._receive(request, self.uploads.stage)
        return Response(status_code=204)

    async def _receive(self, request: Request, method: Receiver) -> None:
        if media_type(request) != OCTET_STREAM:
            raise errors.UnsupportedMediaType(
                f"Content-Type must be {OCTET_STREAM} for image data, not "
                f"{media_type(request) or 'missing'}")
        wanted = image_id(request)
        size = declared_size(request, self.uploads.settings.image_size_cap)
        ctx = identity.context(request)
        await streaming.consume(request, lambda chunks: method(ctx, wanted, chunks, size))
