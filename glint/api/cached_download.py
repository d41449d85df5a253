"""Downloads through the image cache (:mod:`glint.cache`).

An active image that is cached is answered from its cached file, by sendfile when the server
offers it, whole or one byte range. A whole download of one that is not cached streams from
its store and fills the cache in the same pass, unless another fill of it is under way (then
it is only streamed); where the server offers sendfile, the client gets it out of the file
being filled (:mod:`glint.api.filling_download`). The image service has already decided the
caller may download it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import BinaryIO

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from glint import errors, metrics
from glint.api import filling_download, sendfile
from glint.cache.cache import ImageCache
from glint.cache.fill import Expected
from glint.db import models
from glint.images import states
from glint.stores.base import Store

LOG = logging.getLogger(__name__)
OCTET_STREAM = "application/octet-stream"
READ_SIZE = 1024 * 1024


def respond(cache: ImageCache, request: Request, image: models.Image,
            sources: Sequence[tuple[str, Store, str]], span: tuple[int, int] | None,
            status: int, headers: dict[str, str]) -> Response | None:
    """The response from (or filling) the cache; None: serve the download as without one."""
    expected = Expected.of(image) if image.status == states.ACTIVE else None
    if expected is None:
        return None
    first, last = span if span is not None else (0, expected.size - 1)
    length = last - first + 1
    file = cache.open(expected)
    if file is not None:
        metrics.meter("download", "cache")(length)
        if sendfile.offered(request.scope):
            return sendfile.SendfileResponse(file, first, length, status, headers, OCTET_STREAM)
        return StreamingResponse(_chunks(file, first, length), status_code=status,
                                 media_type=OCTET_STREAM, headers=headers)
    store_id, store, location = sources[0]
    if span is not None or (store.local_path(location) is not None and not cache.fill_local):
        return None
    fill = cache.fill(expected)
    if fill is None:
        return None
    try:
        store_id, chunks = first_readable(sources, expected.size)
    except BaseException:
        fill.abort()
        raise
    metrics.meter("download", store_id)(expected.size)
    if sendfile.offered(request.scope) and request.method == "GET":
        return filling_download.FillingResponse(fill, chunks, status, headers, OCTET_STREAM)
    return StreamingResponse(fill.wrap(chunks), status_code=status, media_type=OCTET_STREAM,
                             headers=headers)


def first_readable(sources: Sequence[tuple[str, Store, str]], size: int) -> tuple[str, Iterator[bytes]]:
    """The bytes of the first copy that opens (as image_data's downloads: a store that lost
    its copy does not make the image unreadable while another holds it)."""
    *others, (last_id, last, last_location) = sources
    for store_id, store, location in others:
        try:
            return store_id, store.read(location, 0, size)
        except (errors.StoreError, OSError) as exc:
            LOG.warning("cannot read image data %s from store %s (%s); reading another copy",
                        location, store_id, exc)
    return last_id, last.read(last_location, 0, size)


def _chunks(file: BinaryIO, offset: int, length: int) -> Iterator[bytes]:
    with file:
        file.seek(offset)
        while length > 0 and (chunk := file.read(min(READ_SIZE, length))):
            length -= len(chunk)
            yield chunk
