"""A download that fills the image cache through the real uvicorn server, which offers
sendfile: the client gets the bytes out of the file being filled
(:mod:`glint.api.filling_download`)."""

from __future__ import annotations

import asyncio
import errno
import hashlib
import http.client
import os
import pathlib
import time
from collections.abc import Callable, Iterator

import pytest

from glint import app
from glint.api import filling_download
from glint.api.app import create_app
from glint.stores.memory import MemoryStore
from tests.serving import abandon_download, serving
from tests.unit.api.support import CTX_A, PROJECT_A, add_image

MiB = 1024 * 1024
DATA = os.urandom(filling_download.LEAD + 5 * MiB + 12345)  # past the lead: the pump waits


@pytest.fixture
def glint(make_glint: Callable[..., app.Glint], tmp_path: pathlib.Path) -> app.Glint:
    return make_glint(store=MemoryStore(), image_cache_enabled=True,
                      image_cache_dir=tmp_path / "image-cache")


@pytest.fixture
def port(glint: app.Glint) -> Iterator[int]:
    with serving(create_app(glint, manage_lifecycle=False)) as bound:
        yield bound



def download(port: int, image_id: str) -> tuple[int, bytes]:
    status, _headers, body = download_with_headers(port, image_id)
    return status, body


def download_with_headers(port: int, image_id: str) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", f"/v2/images/{image_id}/file", headers=PROJECT_A)
        response = conn.getresponse()
        headers = {name.lower(): value for name, value in response.getheaders()}
        return response.status, headers, response.read()
    finally:
        conn.close()


def settled(glint: app.Glint, image_id: str, cached: bool) -> bool:
    """Whether the fill ended as told (in place, or gone) within a few seconds."""
    assert glint.cache is not None
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        entries = [e.image_id for e in glint.cache.entries()]
        unfinished = list(glint.cache.incomplete.iterdir())
        if not unfinished and (image_id in entries) == cached:
            return True
        time.sleep(0.05)
    return False


def test_the_bytes_go_out_of_the_file_being_filled(glint: app.Glint, port: int,
                                                  sent: list[int]) -> None:
    image = add_image(glint, CTX_A, DATA)
    status, headers, body = download_with_headers(port, image.id)
    assert status == 200
    assert hashlib.md5(body).hexdigest() == hashlib.md5(DATA).hexdigest()
    # The streamed download's wire contract, unchanged.
    assert (headers["content-length"], headers["content-md5"], headers["content-type"]) == (
        str(len(DATA)), hashlib.md5(DATA).hexdigest(), "application/octet-stream")
    assert "transfer-encoding" not in headers
    assert settled(glint, image.id, cached=True)
    assert sum(sent) == len(DATA)  # every byte by sendfile
    assert download(port, image.id) == (200, DATA)  # from the cache now


def test_a_fill_that_fails_midway_never_stops_the_download(
        glint: app.Glint, port: int, monkeypatch: pytest.MonkeyPatch) -> None:
    image = add_image(glint, CTX_A, DATA)
    real = os.pwrite

    def full_disk(fd: int, data: bytes | memoryview, offset: int) -> int:
        if offset >= 3 * MiB:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd, data, offset)

    monkeypatch.setattr(os, "pwrite", full_disk)
    status, body = download(port, image.id)
    assert status == 200
    assert hashlib.md5(body).hexdigest() == hashlib.md5(DATA).hexdigest()
    assert settled(glint, image.id, cached=False)


def test_a_client_gone_midway_abandons_the_fill(glint: app.Glint, port: int) -> None:
    image = add_image(glint, CTX_A, DATA)
    abandon_download(port, image.id, PROJECT_A)
    assert settled(glint, image.id, cached=False)
    assert download(port, image.id) == (200, DATA)  # and the next download fills it
    assert settled(glint, image.id, cached=True)


def test_after_a_failed_fill_the_chunks_held_in_memory_stay_bounded() -> None:
    """A fill that failed hands the chunks to the sender in memory: the pump stops at
    MEMORY_LEAD of them, not at the file's 32 MiB lead, however slow the client."""
    async def scenario() -> None:
        feed = filling_download._Feed(asyncio.get_running_loop())
        chunk = bytes(filling_download.MiB)
        held = 0
        while feed.has_room():
            feed.hand_over(chunk)
            held += len(chunk)
        assert held == filling_download.MEMORY_LEAD < filling_download.LEAD
        assert await feed.next(0) == chunk  # the client reads one
        feed.sent(len(chunk))
        assert feed.has_room()

    asyncio.run(scenario())
