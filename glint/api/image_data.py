"""``GET /v2/images/{id}/file``: image bytes from the store, whole or one byte range.

(Data in, ``PUT .../file`` and ``PUT .../stage``, is :mod:`glint.api.image_upload`.)

From a store with files (the filesystem store) the server sends the bytes by ``sendfile(2)``
when it offers ASGI's ``zerocopysend`` (``glint serve`` does, :mod:`glint.server.sendfile`): they
never pass through Python. Otherwise the store is read chunk by chunk in the thread pool
(Starlette iterates a sync iterator there), so an image is never held in memory.
"""

from __future__ import annotations

import logging
import pathlib
import re
from collections.abc import Sequence
from typing import BinaryIO

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute

from glint import errors, metrics
from glint.api import cached_download, identity, image_upload, sendfile
from glint.api.images import image_id
from glint.api.routing import resource
from glint.cache.cache import ImageCache
from glint.db import models
from glint.images.service import ImageService
from glint.images.uploads import Uploads
from glint.stores.base import Store

LOG = logging.getLogger(__name__)
OCTET_STREAM = "application/octet-stream"
# ASCII digits only (``re.ASCII``: ``\d`` and ``\s`` would take other scripts' digits and spaces).
_RANGE = re.compile(r"\s*bytes\s*=\s*(\d{0,19})\s*-\s*(\d{0,19})\s*", re.IGNORECASE | re.ASCII)


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """``(first, last)`` byte positions (inclusive) a ``Range`` header asks for.

    None means serve everything: no header, or one this does not parse (several ranges, other
    units), which RFC 9110 lets a server ignore. A well-formed range that starts past the end
    is RangeNotSatisfiable.
    """
    match = _RANGE.fullmatch(header) if header else None
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
    def __init__(self, images: ImageService, cache: ImageCache | None = None) -> None:
        self.images = images
        self.cache = cache

    def download(self, request: Request) -> Response:
        ctx = identity.context(request)
        wanted = image_id(request)
        span, size = None, None
        if header := request.headers.get("range"):
            size = self.images.get(ctx, wanted).size
            span = byte_range(header, size) if size is not None else None
        image, sources = self.images.data_sources(ctx, wanted)
        if not sources:
            return Response(status_code=204)
        if span is None:
            status, headers = 200, _whole_image_headers(image)
        else:
            # No Content-MD5 here: it would describe the whole image, not this body.
            status, headers = 206, {"Content-Length": str(span[1] - span[0] + 1),
                                    "Content-Range": f"bytes {span[0]}-{span[1]}/{size}"}
        if self.cache is not None and (cached := cached_download.respond(
                self.cache, request, image, sources, span, status, headers)) is not None:
            return cached
        if span is None:
            return _body(request, sources, 0, image.size, status, headers)
        return _body(request, sources, span[0], span[1] - span[0] + 1, status, headers)


def _whole_image_headers(image: models.Image) -> dict[str, str]:
    headers = {}
    if image.size is not None:
        headers["Content-Length"] = str(image.size)
    if image.checksum:
        headers["Content-MD5"] = image.checksum
    return headers


def _body(request: Request, sources: Sequence[tuple[str, Store, str]], offset: int,
          length: int | None, status: int, headers: dict[str, str]) -> Response:
    """``length`` bytes from ``offset`` of the first copy that opens, as Glance moves on to an
    image's next location: a store that lost its copy (or cannot be reached) does not make
    the image unreadable while another store holds it."""
    *others, (_last_id, store, location) = sources
    for store_id, other, other_location in others:
        try:
            return _counted(_from(request, other, other_location, offset, length, status,
                                  headers), store_id, length)
        except (errors.StoreError, OSError) as exc:
            LOG.warning("cannot read image data %s from store %s (%s); reading another copy",
                        other_location, store_id, exc)
    return _counted(_from(request, store, location, offset, length, status, headers), _last_id,
                    length)


def _counted(response: Response, store_id: str, length: int | None) -> Response:
    """``glint_image_data_bytes{direction="download"}``: the body's length as it is answered
    (a client that leaves early still counts in full; one of unknown length is not counted)."""
    if length:
        metrics.meter("download", store_id)(length)
    return response


def _from(request: Request, store: Store, location: str, offset: int, length: int | None,
          status: int, headers: dict[str, str]) -> Response:
    """By sendfile from the store's own file when the server takes one, else streamed."""
    path = store.local_path(location) if sendfile.offered(request.scope) else None
    if path is None or length is None:  # (no length: an image with no recorded size)
        return StreamingResponse(store.read(location, offset, length), status_code=status,
                                 media_type=OCTET_STREAM, headers=headers)
    return sendfile.SendfileResponse(_open(path, location), offset, length, status, headers,
                                     OCTET_STREAM)


def _open(path: pathlib.Path, location: str) -> BinaryIO:
    # Opened now, just after the checks, as a stream's file is: the bytes of an image deleted
    # from here on are still sent whole; those of one deleted already are missing (500).
    try:
        return open(path, "rb", buffering=0)  # the response closes it
    except FileNotFoundError:
        raise errors.StoreError(f"image data {location!r} is missing from the store") from None


def routes(images: ImageService, uploads: Uploads, cache: ImageCache | None) -> list[BaseRoute]:
    api = ImageDataApi(images, cache)
    upload = image_upload.ImageUploadApi(uploads)
    return [resource("/v2/images/{image_id}/file", {"GET": api.download, "PUT": upload.upload}),
            resource("/v2/images/{image_id}/stage", {"PUT": upload.stage})]
