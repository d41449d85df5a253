"""The machine's limits for the data path, measured the way glint's data path uses it.

- hashing: md5 and sha512 over 1 MiB chunks, each alone, then both at once in two threads
  (glint's single-pass copy hashes in parallel threads: the slower of the two, slowed further
  by sharing the cores, bounds it);
- disk: 1 MiB writes into the data directory's filesystem and an fsync at the end
  (``dd bs=1M conv=fsync``): what the disk takes durably;
- loopback HTTP: a GET from :mod:`glint_bench.fileserver`, the body read and discarded by
  :func:`glint_bench.rawhttp.get`;
- cold reads: ``dd bs=1M`` of a file whose pages were dropped first (fsync, then
  ``posix_fadvise(DONTNEED)``, which needs no root), buffered and with ``iflag=direct``: what the
  disk gives a download of an image not read lately.

Each has a ``streams`` form too: that many at once (threads, or dd processes), the aggregate
MiB/s, the limit for as many concurrent transfers.
"""

from __future__ import annotations

import functools
import hashlib
import os
import pathlib
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence

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


def _parallel(works: Sequence[Callable[[], object]]) -> float:
    """Seconds for all of ``works``, each in its own thread, started together."""
    threads = [threading.Thread(target=work) for work in works]

    def run() -> None:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    return _timed(run)


def hashing_streams(data: Data, streams: int, *names: str) -> float:
    """Aggregate MiB/s of ``streams`` copies of :func:`hashing`'s work at once."""
    works = [functools.partial(_hash_all, data, name) for _ in range(streams) for name in names]
    return stats.mib_per_s(streams * data.nbytes, _parallel(works))


def disk_write_streams(data: Data, directory: pathlib.Path, streams: int) -> float:
    """Aggregate MiB/s of ``streams`` files written at once, each as :func:`disk_write`'s."""
    paths = [directory / f".bench-disk-limit-{i}" for i in range(streams)]

    def write(path: pathlib.Path) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            for chunk in data.chunks():
                view = chunk
                while view:
                    view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)

    try:
        seconds = _parallel([functools.partial(write, path) for path in paths])
    finally:
        for path in paths:
            path.unlink(missing_ok=True)
    return stats.mib_per_s(streams * data.nbytes, seconds)


def http_get_streams(port: int, names: Sequence[str], expected: int) -> float:
    """Aggregate MiB/s of ``GET /name`` for each of ``names`` at once."""
    def get(name: str) -> None:
        reply = rawhttp.get(port, f"/{name}")
        if reply.status != 200 or reply.nbytes != expected:
            raise RuntimeError(f"GET /{name}: HTTP {reply.status}, {reply.nbytes} of {expected}")

    return stats.mib_per_s(len(names) * expected,
                           _parallel([functools.partial(get, name) for name in names]))


def drop_cached(path: pathlib.Path) -> None:
    """Evict ``path``'s pages from the page cache (flushed first: only clean pages go)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def cold_read(paths: Sequence[pathlib.Path], direct: bool = False) -> float:
    """Aggregate MiB/s of ``dd bs=1M`` reading each of ``paths`` at once, from the disk.

    Buffered (``direct=False``), the pages are dropped first; ``iflag=direct`` bypasses the
    page cache altogether.
    """
    for path in paths:
        drop_cached(path)
    flags = ["iflag=direct"] if direct else []
    start = time.perf_counter()
    running = [subprocess.Popen(["dd", f"if={path}", "of=/dev/null", "bs=1M", *flags],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
               for path in paths]
    for process, path in zip(running, paths, strict=True):
        _, err = process.communicate()
        if process.returncode:
            raise RuntimeError(f"dd if={path}: {err.decode(errors='replace')[-300:]}")
    seconds = time.perf_counter() - start
    return stats.mib_per_s(sum(path.stat().st_size for path in paths), seconds)
