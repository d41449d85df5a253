"""The image cache: a download from the object store that fills the cache, then one served
from the cache.

glint serves from the one-node Swift with its image cache on (the default with a remote
store). The uncached download streams from Swift and fills the cache in the same pass: its
limit is python-swiftclient's plain streamed GET of the same object (objects.client_limits).
The cached download goes out of the cache file by sendfile: its limit is the loopback file
server's GET of that very file, warm in the page cache (the same run's sendfile limit).
"""

from __future__ import annotations

import pathlib
import time

import httpx

from glint_bench import procs

ADMIN = {"X-User-Id": "bench", "X-Project-Id": "bench", "X-Roles": "admin,member,reader"}


def wait_cached(glint: procs.Glint, image_id: str, timeout: float = 120) -> None:
    """Until the fill is verified and in place (the client has its body a moment before)."""
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=f"http://127.0.0.1:{glint.port}", headers=ADMIN) as http:
        while time.monotonic() < deadline:
            listing = http.get("/v2/cache", timeout=10).json()
            if image_id in [e["image_id"] for e in listing["cached_images"]]:
                return
            time.sleep(0.2)
    raise RuntimeError(f"image {image_id} was not cached within {timeout} s")


def fills(glint: procs.Glint) -> dict[str, float]:
    """glint_cache_fills_total by outcome, from /metrics."""
    text = httpx.get(f"http://127.0.0.1:{glint.port}/metrics", timeout=10).text
    found: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith('glint_cache_fills_total{outcome="'):
            outcome = line.split('"')[1]
            found[outcome] = float(line.rsplit(" ", 1)[1])
    return found


def cache_file(data_dir: pathlib.Path, image_id: str) -> pathlib.Path:
    return data_dir / "image-cache" / image_id
