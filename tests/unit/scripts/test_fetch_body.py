"""An import's body read from the socket into reused buffers (glint.scripts.fetch)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator

import httpcore

from glint import buffers, datapath, settings, urlfilter
from glint.scripts import fetch
from glint.stores.memory import MemoryStore
from tests.httpserver import LocalServer


def _seen(chunks: Iterable[bytes], sizes: list[int], views: list[bool]) -> Iterator[bytes]:
    for chunk in chunks:
        sizes.append(len(chunk))
        views.append(buffers.lent(chunk) is not None)
        yield chunk


def test_the_body_comes_in_full_pool_buffers_that_the_copy_reuses() -> None:
    config = settings.Settings(import_allowed_hosts=("127.0.0.1",))
    body = os.urandom(7 * fetch.READ_SIZE + 12345)
    sizes: list[int] = []
    views: list[bool] = []
    store = MemoryStore()
    with LocalServer() as server, fetch.client(config) as http, fetch.open_url(
            http, server.serve("/disk.raw", body), urlfilter.UrlFilter.from_settings(config),
            max_redirects=0) as response, store.writer("x") as writer:
        chunks = _seen(fetch._raw_body(response, len(body), 5.0), sizes, views)
        digest = datapath.copy(chunks, writer, size_cap=1 << 40, hash_algo="md5")
        writer.commit()
    assert store.blobs["x"] == body and digest.size == len(body)
    assert sizes == [fetch.READ_SIZE] * 7 + [12345]  # h11's buffered part included in the first
    assert all(views)


class _Recording(httpcore.NetworkStream):
    def __init__(self) -> None:
        self.asked: list[int] = []

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        self.asked.append(max_bytes)
        return b"x"


def test_only_the_reads_after_the_headers_are_big() -> None:
    # The first read brings the headers, and whatever of the body came with them is held until
    # the import ends: a 1 MiB first read, up to 2 MiB an import.
    inner = _Recording()
    stream = fetch._BigReads(inner)
    for _ in range(3):
        stream.read(64 * 1024)
    assert inner.asked == [64 * 1024, fetch.READ_SIZE, fetch.READ_SIZE]
