"""The image cache in `glint serve`: concurrent first downloads fill it once, cached bytes go
out by sendfile (ranges too), a changed cached file is never served, prefetch by the API, and
python-glanceclient's cache commands."""

from __future__ import annotations

import concurrent.futures
import hashlib
import os
import pathlib
import re
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.acceptance.conftest import ADMIN_ROLES, GlanceCli, Server, start_glint

ADMIN = {"X-User-Id": "admin", "X-Project-Id": "admin-project", "X-Roles": "admin,member,reader"}
DATA = os.urandom(8 * 1024 * 1024 + 5)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    # An admin's default identity: the glance command sends no roles.
    started = start_glint(tmp_path_factory.mktemp("glint"), image_cache_enabled="true",
                          default_roles=ADMIN_ROLES)
    yield started
    started.stop()


def upload(server: Server, data: bytes) -> str:
    created = httpx.post(f"{server.url}/v2/images", headers=ADMIN, timeout=10, json={
        "name": "cached", "disk_format": "raw", "container_format": "bare"})
    image_id: str = created.json()["id"]
    httpx.put(f"{server.url}/v2/images/{image_id}/file", content=data, timeout=60,
              headers={**ADMIN, "Content-Type": "application/octet-stream"}).raise_for_status()
    return image_id


def counter(server: Server, name: str, outcome: str) -> float:
    text = httpx.get(f"{server.url}/metrics", timeout=10).text
    found = re.search(rf'^{name}_total{{outcome="{outcome}"}} (\S+)$', text, re.M)
    return float(found.group(1)) if found else 0.0


def download(server: Server, image_id: str, **headers: str) -> httpx.Response:
    return httpx.get(f"{server.url}/v2/images/{image_id}/file", headers={**ADMIN, **headers},
                     timeout=60)


def test_concurrent_first_downloads_fill_once_then_sendfile(server: Server) -> None:
    image_id = upload(server, DATA)
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        bodies = list(pool.map(lambda _: download(server, image_id).content, range(4)))
    assert all(hashlib.md5(body).digest() == hashlib.md5(DATA).digest() for body in bodies)
    assert cached(server, image_id)
    assert counter(server, "glint_cache_fills", "cached") == 1
    ranged = download(server, image_id, Range="bytes=1000-2000000")
    assert ranged.status_code == 206 and ranged.content == DATA[1000:2000001]
    assert download(server, image_id).content == DATA
    assert counter(server, "glint_cache_requests", "hit") >= 2


def cached(server: Server, image_id: str, timeout: float = 30) -> bool:
    """Whether the image is (within ``timeout``) in the cache: a client has the whole body
    (its Content-Length) a moment before the server has verified and kept its fill."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        listing = httpx.get(f"{server.url}/v2/cache", headers=ADMIN, timeout=10).json()
        if image_id in [e["image_id"] for e in listing["cached_images"]]:
            return True
        time.sleep(0.1)
    return False


def test_a_changed_cached_file_is_never_served(server: Server) -> None:
    image_id = upload(server, DATA[:100_000])
    download(server, image_id)
    assert cached(server, image_id)
    path = server.data_dir / "image-cache" / image_id
    path.write_bytes(b"\0" * 100_000)
    assert download(server, image_id).content == DATA[:100_000]
    assert counter(server, "glint_cache_requests", "discarded") == 1


def test_prefetch_through_the_api(server: Server) -> None:
    image_id = upload(server, DATA[:300_000])
    queued = httpx.put(f"{server.url}/v2/cache/{image_id}", headers=ADMIN, timeout=10)
    assert queued.status_code == 202
    assert cached(server, image_id)
    listing = httpx.get(f"{server.url}/v2/cache", headers=ADMIN, timeout=10).json()
    assert listing["queued_images"] == []
    tasks = httpx.get(f"{server.url}/v2/tasks?type=cache_prefetch", headers=ADMIN,
                      timeout=10).json()["tasks"]
    assert [t["status"] for t in tasks] == ["success"]


def test_glanceclient_cache_commands(server: Server, tmp_path: pathlib.Path) -> None:
    """glance cache-queue, cache-list, cache-delete and cache-clear. glanceclient asks the
    versions document for v2.14 first, and prints (rather than exits on) a refused call: so
    stderr is checked too."""
    glance = GlanceCli(server.url, tmp_path)
    image_id = upload(server, DATA[:200_000])

    def listed() -> str:
        result = glance("cache-list")
        assert result.stderr == "", result.stderr
        return result.stdout

    queued = glance("cache-queue", image_id)
    assert queued.stderr == "", queued.stderr
    assert cached(server, image_id)
    row = next(line for line in listed().splitlines() if image_id in line)
    assert "cached" in row
    deleted = glance("cache-delete", image_id)
    assert deleted.stderr == "" and image_id not in listed()
    httpx.get(f"{server.url}/v2/images/{image_id}/file", headers=ADMIN, timeout=10)
    assert cached(server, image_id)  # the download filled it again
    cleared = glance("cache-clear", "--target", "cache")
    assert cleared.stderr == "" and image_id not in listed()
