"""The machine's limits for the data path, measured the way glint's data path uses it.

- hashing: md5 and sha512 over 1 MiB chunks, each alone, then both at once in two threads
  (glint's single-pass copy hashes in parallel threads: the slower of the two, slowed further
  by sharing the cores, bounds it);
- disk: 1 MiB writes into the data directory's filesystem and an fsync at the end
  (``dd bs=1M conv=fsync``): what the disk takes durably;
- loopback HTTP: a GET from :mod:`glint_bench.fileserver`, the body read and discarded by
  :func:`glint_bench.rawhttp.get`.
"""

from __future__ import annotations

import hashlib
import os
import pathlib
import threading
import time
from collections.abc import Callable, Iterator

from glint_bench import rawhttp, stats

CHUNK = 1024 * 1024
POOL_MIB = 64  # distinct random data, reused round robin


class Data:
    """``mib`` MiB of random-looking data as 1 MiB chunks, without holding it all."""

    def __init__(self, mib: int) -> None:
        self.mib = mib
        self._pool = memoryview(os.urandom(POOL_MIB * CHUNK))

    def chunks(self) -> Iterator[memoryview]:
        for i in range(self.mib):
            start = (i % POOL_MIB) * CHUNK
            yield self._pool[start:start + CHUNK]

    @property
    def nbytes(self) -> int:
        return self.mib * CHUNK


def _hash_all(data: Data, name: str) -> None:
    hasher = hashlib.new(name, usedforsecurity=False)
    for chunk in data.chunks():
        hasher.update(chunk)


def _timed(work: Callable[[], object]) -> float:
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def hashing(data: Data, *names: str) -> float:
    """MiB/s of hashing ``data`` with every algorithm in ``names``, each in its own thread."""
    threads = [threading.Thread(target=_hash_all, args=(data, name)) for name in names]

    def run() -> None:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    return stats.mib_per_s(data.nbytes, _timed(run))


def disk_write(data: Data, directory: pathlib.Path) -> float:
    """MiB/s of writing ``data`` to a new file in ``directory`` and fsyncing it (then removed)."""
    path = directory / ".bench-disk-limit"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)

    def run() -> None:
        for chunk in data.chunks():
            view = chunk
            while view:
                view = view[os.write(fd, view):]
        os.fsync(fd)

    try:
        seconds = _timed(run)
    finally:
        os.close(fd)
        path.unlink()
    return stats.mib_per_s(data.nbytes, seconds)


def http_get(port: int, name: str, expected: int) -> float:
    """MiB/s of ``GET /name`` from the file server on ``port``, body discarded."""
    start = time.perf_counter()
    reply = rawhttp.get(port, f"/{name}")
    seconds = time.perf_counter() - start
    if reply.status != 200 or reply.nbytes != expected:
        raise RuntimeError(f"GET /{name}: HTTP {reply.status}, {reply.nbytes} of {expected} bytes")
    return stats.mib_per_s(expected, seconds)
