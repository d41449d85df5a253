"""Directories on filesystems that really refuse writes: full, or read-only.

As root (this sandbox, CI's container) a tmpfs of its own is mounted: a 1 MiB one fills up
(the kernel's ENOSPC), a read-only one refuses files (EROFS). Where mounting is not permitted
the same errors come from the kernel by other means: writes go to ``/dev/full`` (ENOSPC), and a
directory without write permission refuses files (EACCES, for a user that is not root).
Nothing here fakes an errno.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import shutil
import subprocess
from collections.abc import Iterator

import pytest

from glint.stores import filesystem

SIZE = 1024 * 1024  # the full filesystem's size; tests write more than this


def mountable() -> bool:
    """Whether this process mounts its own filesystems (else the fallbacks serve)."""
    return shutil.which("mount") is not None and os.geteuid() == 0


def _mount(point: pathlib.Path, options: str) -> bool:
    """Mount a tmpfs at ``point``; False when this process may not."""
    if not mountable():
        return False
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(point)],
                          capture_output=True, check=False)
    return done.returncode == 0


def _unmount(point: pathlib.Path) -> None:
    subprocess.run(["umount", "-l", str(point)], capture_output=True, check=True)


@contextlib.contextmanager
def full(point: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[pathlib.Path]:
    """``point`` on a filesystem that fills up after SIZE bytes (or at once, on the fallback)."""
    point.mkdir(parents=True, exist_ok=True)
    if _mount(point, f"size={SIZE},mode=0755"):
        try:
            yield point
        finally:
            _unmount(point)
        return
    original = filesystem.FilesystemWriter.__init__

    def on_dev_full(self: filesystem.FilesystemWriter, directory: pathlib.Path,
                    key: str) -> None:
        original(self, directory, key)
        if directory == point.resolve():
            device = os.open("/dev/full", os.O_WRONLY)
            assert self._fd is not None
            os.dup2(device, self._fd)  # the temporary file stays, empty: abort removes it
            os.close(device)

    monkeypatch.setattr(filesystem.FilesystemWriter, "__init__", on_dev_full)
    yield point


@contextlib.contextmanager
def read_only(point: pathlib.Path) -> Iterator[pathlib.Path]:
    """``point`` on a filesystem (or a directory) that refuses new files."""
    point.mkdir(parents=True, exist_ok=True)
    if _mount(point, "size=64k,ro"):
        try:
            yield point
        finally:
            _unmount(point)
        return
    point.chmod(0o555)
    try:
        yield point
    finally:
        point.chmod(0o755)
