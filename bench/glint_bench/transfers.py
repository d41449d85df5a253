"""glint moving image bytes: import (task create → success), upload and download.

Each is timed from the client's side and watched for the server's peak RSS; each result is
checked (status, size, md5) so a fast failure never passes for a fast transfer.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import pathlib
import time
from collections.abc import Callable
from concurrent import futures

import httpx

from glint_bench import limits, procs, rawhttp, stats

POLL = 0.05  # seconds between task polls: ~1% of a transfer of a few seconds, little load
MIN_RATE = 5 * 1024 * 1024  # bytes/s below which a transfer is given up as stuck


@dataclasses.dataclass(frozen=True)
class Transfer:
    seconds: float
    mib_s: float
    watch: procs.Watch  # the server's peak RSS and CPU time during the transfer
    image_id: str


@dataclasses.dataclass(frozen=True)
class Source:
    path: pathlib.Path
    size: int
    md5: str


def make_source(path: pathlib.Path, data: limits.Data) -> Source:
    """Write ``data`` to ``path``, each MiB stamped with its index so no two are alike."""
    md5 = hashlib.md5(usedforsecurity=False)
    with path.open("wb") as out:
        for index, chunk in enumerate(data.chunks()):
            stamped = index.to_bytes(8, "big") + chunk[8:]
            md5.update(stamped)
            out.write(stamped)
        out.flush()
        os.fsync(out.fileno())  # nothing left for the kernel to flush during measurements
    return Source(path, data.nbytes, md5.hexdigest())


def _deadline(size: int) -> float:
    return time.monotonic() + 60 + size / MIN_RATE


def _check_image(http: httpx.Client, image_id: str, source: Source) -> None:
    image = http.get(f"/v2/images/{image_id}").raise_for_status().json()
    if (image["status"], image["size"], image["checksum"]) != ("active", source.size, source.md5):
        raise RuntimeError(f"image {image_id} is {image['status']}, {image['size']} bytes, "
                           f"md5 {image['checksum']}; expected active, {source.size}, {source.md5}")


def _import_one(http: httpx.Client, url: str, source: Source) -> str:
    """Create an import task, wait for it to end; the image's id (unchecked)."""
    body = {"type": "import", "input": {
        "import_from": url, "import_from_format": "raw",
        "image_properties": {"name": "bench-import", "container_format": "bare"}}}
    deadline = _deadline(source.size)
    task = http.post("/v2/tasks", json=body).raise_for_status().json()
    while task["status"] not in ("success", "failure") and time.monotonic() < deadline:
        time.sleep(POLL)
        task = http.get(f"/v2/tasks/{task['id']}").raise_for_status().json()
    if task["status"] != "success":
        raise RuntimeError(f"import task {task['id']} is {task['status']}: {task['message']}")
    image_id: str = task["result"]["image_id"]
    return image_id


def import_(glint: procs.Glint, url: str, source: Source) -> Transfer:
    with httpx.Client(base_url=glint.url, timeout=30) as http:
        with procs.Watch(glint.process.pid) as watch:
            start = time.perf_counter()
            image_id = _import_one(http, url, source)
            seconds = time.perf_counter() - start
        _check_image(http, image_id, source)
    return Transfer(seconds, stats.mib_per_s(source.size, seconds), watch, image_id)


@dataclasses.dataclass(frozen=True)
class Many:
    """``count`` transfers at once: aggregate MiB/s, from the first start to the last end."""

    count: int
    seconds: float
    mib_s: float
    watch: procs.Watch
    image_ids: list[str]


def _at_once(glint: procs.Glint, count: int, size: int, one: Callable[[int], str]) -> Many:
    with procs.Watch(glint.process.pid) as watch:
        start = time.perf_counter()
        with futures.ThreadPoolExecutor(count) as pool:
            ids = list(pool.map(one, range(count)))  # re-raises the first failure
        seconds = time.perf_counter() - start
    return Many(count, seconds, stats.mib_per_s(count * size, seconds), watch, ids)


def imports(glint: procs.Glint, url: str, source: Source, count: int) -> Many:
    """``count`` imports of ``url`` at once, each image checked (size and md5) afterwards."""
    def one(_: int) -> str:
        with httpx.Client(base_url=glint.url, timeout=30) as http:
            return _import_one(http, url, source)

    done = _at_once(glint, count, source.size, one)
    with httpx.Client(base_url=glint.url, timeout=30) as http:
        for image_id in done.image_ids:
            _check_image(http, image_id, source)
    return done


def downloads(glint: procs.Glint, image_ids: list[str], size: int) -> Many:
    """Every image of ``image_ids`` downloaded at once, bodies counted and discarded."""
    def one(index: int) -> str:
        image_id = image_ids[index]
        reply = rawhttp.get(glint.port, f"/v2/images/{image_id}/file")
        if (reply.status, reply.nbytes) != (200, size):
            raise RuntimeError(f"download {image_id}: HTTP {reply.status}, {reply.nbytes} of "
                               f"{size} bytes")
        return image_id

    return _at_once(glint, len(image_ids), size, one)


def delete_images(glint: procs.Glint, image_ids: list[str]) -> None:
    with httpx.Client(base_url=glint.url, timeout=30) as http:
        for image_id in image_ids:
            http.delete(f"/v2/images/{image_id}").raise_for_status()


def check_downloads(glint: procs.Glint, image_ids: list[str], source: Source) -> None:
    """Download each image again, untimed, and compare its md5 with the source's."""
    for image_id in image_ids:
        reply = rawhttp.get(glint.port, f"/v2/images/{image_id}/file", md5=True)
        if (reply.status, reply.nbytes, reply.md5) != (200, source.size, source.md5):
            raise RuntimeError(f"download {image_id}: HTTP {reply.status}, {reply.nbytes} of "
                               f"{source.size} bytes, md5 {reply.md5} (wanted {source.md5})")


def upload(glint: procs.Glint, source: Source) -> Transfer:
    with httpx.Client(base_url=glint.url, timeout=30) as http:
        image = http.post("/v2/images", json={"name": "bench-upload", "disk_format": "raw",
                                              "container_format": "bare"}).raise_for_status().json()
        with procs.Watch(glint.process.pid) as watch:
            start = time.perf_counter()
            reply = rawhttp.put_file(glint.port, f"/v2/images/{image['id']}/file", source.path,
                                     {"Content-Type": "application/octet-stream"})
            seconds = time.perf_counter() - start
        if reply.status != 204:
            raise RuntimeError(f"upload: HTTP {reply.status} {reply.body[:500]!r}")
        _check_image(http, image["id"], source)
    return Transfer(seconds, stats.mib_per_s(source.size, seconds), watch, image["id"])


def download(glint: procs.Glint, image_id: str, size: int) -> Transfer:
    with procs.Watch(glint.process.pid) as watch:
        start = time.perf_counter()
        reply = rawhttp.get(glint.port, f"/v2/images/{image_id}/file")
        seconds = time.perf_counter() - start
    if reply.status != 200 or reply.nbytes != size:
        raise RuntimeError(f"download: HTTP {reply.status}, {reply.nbytes} of {size} bytes")
    return Transfer(seconds, stats.mib_per_s(size, seconds), watch, image_id)


def warm(path: pathlib.Path) -> None:
    """Read ``path`` once so that the page cache holds it (as it does for a hot image)."""
    buffer = bytearray(limits.CHUNK)
    with path.open("rb", buffering=0) as handle:
        while handle.readinto(buffer):
            pass
