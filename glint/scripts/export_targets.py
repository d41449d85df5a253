"""Where an export goes: a file under a directory the operator allows, or an http(s) PUT.

``file:///dir/name`` targets must resolve (symlinks and ``..`` followed) to a directory at or
under one of ``export_allowed_dirs``; with none set, file exports are refused. glint never
overwrites: a name that exists (even a dangling symlink) is refused, and the bytes are written
to a hidden temporary file in the same directory, fsynced, then linked to the final name in one
step that fails if the name appeared meanwhile. A failed export leaves nothing behind. The
temporary file's name carries the task's id, and a published file is marked with it (the
extended attribute ``user.glint.export_task``, where the filesystem has them), so that
:func:`remove_partial` can clear what a killed run of that task left, and nothing else.

``http(s)://`` targets pass the import URL filter (:mod:`glint.urlfilter`: schemes, hosts) and
get the bytes as the body of one streamed PUT; an answer other than 2xx fails the export.
glint does not follow redirects for a PUT. A receiver that sees the connection drop before
``Content-Length`` bytes arrived has only a partial body, which it should discard.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import hashlib
import os
import pathlib
import posixpath
import stat
import urllib.parse
import uuid
from collections.abc import Iterable, Iterator
from types import TracebackType
from typing import Protocol, Self

import httpx

from glint import datapath, errors, urlfilter
from glint.scripts import contract, fetch

USER_AGENT = "glint-export"
TMP_SUFFIX = ".glint-export.tmp"
TASK_XATTR = "user.glint.export_task"


class Target(Protocol):
    @property
    def url(self) -> str:
        """Where the data goes, as the task's input named it."""
        ...

    def send(self, ctx: contract.ScriptContext, chunks: Iterable[bytes],
             length: int | None) -> datapath.Digest:
        """Deliver ``chunks`` (``length`` bytes when known); return what was delivered."""
        ...


def parse(export_to: str, settings: contract.ScriptSettings) -> Target:
    """The target ``export_to`` names, if glint may write there (BadRequest saying why not)."""
    scheme = urllib.parse.urlsplit(export_to).scheme.lower()
    if scheme == "file":
        return FileTarget.parse(export_to, settings.export_allowed_dirs)
    return HttpTarget.parse(export_to, settings)


# -- files ------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class FileTarget:
    url: str
    path: pathlib.Path  # the directory resolved, the name as given
    roots: tuple[str, ...]  # the allowed directories, resolved

    @classmethod
    def parse(cls, url: str, allowed_dirs: Iterable[pathlib.Path]) -> FileTarget:
        target = cls.locate(url, allowed_dirs)
        if os.path.lexists(target.path):
            raise errors.BadRequest(f"export_to {url}: {target.path} already exists, and "
                                    "exports never overwrite")
        return target

    @classmethod
    def locate(cls, url: str, allowed_dirs: Iterable[pathlib.Path]) -> FileTarget:
        """The target, checked as ``parse`` does except that its file may already exist."""
        roots = tuple(os.path.realpath(d) for d in allowed_dirs)
        if not roots:
            raise errors.BadRequest("Exports to files are turned off here (the "
                                    "export_allowed_dirs setting is empty)")
        raw = _file_path(url)
        name = posixpath.basename(raw)
        if name in ("", ".", ".."):
            raise errors.BadRequest(f"export_to {url} does not name a file")
        directory = os.path.realpath(posixpath.dirname(raw))
        if not any(_inside(directory, root) for root in roots):
            raise errors.BadRequest(f"export_to {url} is outside the directories exports may "
                                    f"write to ({', '.join(roots)})")
        if not os.path.isdir(directory):
            raise errors.BadRequest(f"export_to {url}: directory {directory} does not exist")
        return cls(url=url, path=pathlib.Path(directory, name), roots=roots)

    def send(self, ctx: contract.ScriptContext, chunks: Iterable[bytes],
             length: int | None) -> datapath.Digest:
        with FileWriter(self.path, self.roots, ctx.task_id) as writer:
            digest = datapath.copy(
                chunks, writer, size_cap=ctx.settings.image_size_cap,
                hash_algo=ctx.settings.hashing_algorithm, expected_size=length,
                progress=lambda done: ctx.report_progress(done, length),
                should_cancel=ctx.should_cancel)
            writer.commit()
        return digest


class FileWriter:
    """Writes a new file through a descriptor of its directory, so a swapped path cannot
    redirect it; the final name appears only in ``commit``, and never replaces a file.

    ``task_id`` (the exporting task's) goes into the temporary file's name and onto the
    published file, for :func:`remove_partial`."""

    _committed = False

    def __init__(self, path: pathlib.Path, roots: tuple[str, ...], task_id: str = "") -> None:
        self.path = path
        self.task_id = task_id
        self._dir: int | None = _open_directory(path, roots)
        self._tmp = f"{_tmp_prefix(path.name, task_id)}{uuid.uuid4().hex[:12]}{TMP_SUFFIX}"
        self._fd: int | None = None
        try:
            self._fd = os.open(self._tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                               | os.O_CLOEXEC, 0o644, dir_fd=self._dir)
        except BaseException:
            self.abort()
            raise

    def write(self, data: bytes | memoryview) -> None:
        assert self._fd is not None, "write after commit/abort"
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view):]

    def commit(self) -> str:
        assert self._fd is not None and self._dir is not None, "commit after commit/abort"
        if self.task_id:
            with contextlib.suppress(OSError):  # no extended attributes here: no mark
                os.setxattr(self._fd, TASK_XATTR, self.task_id.encode())
        os.fsync(self._fd)
        os.close(self._fd)
        self._fd = None
        _publish(self._dir, self._tmp, self.path)
        self._committed = True
        os.fsync(self._dir)
        self._close_dir()
        return str(self.path)

    def abort(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._dir is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._tmp, dir_fd=self._dir)
            self._close_dir()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if not self._committed:
            self.abort()

    def _close_dir(self) -> None:
        if self._dir is not None:
            os.close(self._dir)
            self._dir = None


def remove_partial(url: str, settings: contract.ScriptSettings, task_id: str) -> int:
    """Remove what runs of task ``task_id`` left at the file target ``url``; return how many.

    That is the temporary files named for the task, and the target itself if it was
    published by the task (marked with its id): a run killed after publishing, before its
    success was recorded. A file anyone else wrote is never touched. URLs, targets outside
    ``export_allowed_dirs`` and missing directories have nothing to remove.
    """
    if urllib.parse.urlsplit(url).scheme.lower() != "file":
        return 0  # a receiver discards a PUT whose body was cut short
    try:
        target = FileTarget.locate(url, settings.export_allowed_dirs)
        directory = _open_directory(target.path, target.roots)
    except (errors.GlintError, OSError):
        return 0
    try:
        prefix, removed = _tmp_prefix(target.path.name, task_id), 0
        names = [n for n in os.listdir(directory) if n.startswith(prefix) and n.endswith(TMP_SUFFIX)]
        if _marked_by(directory, target.path.name, task_id):
            names.append(target.path.name)
        for name in names:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name, dir_fd=directory)
                removed += 1
        return removed
    finally:
        os.close(directory)


def _marked_by(directory: int, name: str, task_id: str) -> bool:
    """Whether ``name`` is a regular file published by task ``task_id``."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                     dir_fd=directory)
    except OSError:  # missing, or a symlink
        return False
    try:
        return stat.S_ISREG(os.fstat(fd).st_mode) and os.getxattr(fd, TASK_XATTR) == task_id.encode()
    except OSError:  # not marked, or no extended attributes on this filesystem
        return False
    finally:
        os.close(fd)


def _tmp_prefix(name: str, task_id: str) -> str:
    return f".{name[:150]}.{task_id}." if task_id else f".{name[:200]}."


def _open_directory(path: pathlib.Path, roots: tuple[str, ...]) -> int:
    """A descriptor of ``path``'s directory, which must (still) be inside a root."""
    directory = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        _check_opened_directory(directory, path, roots)
    except BaseException:
        os.close(directory)
        raise
    return directory


def _file_path(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        raise errors.BadRequest(f"export_to {url} names another host; a file URL is "
                                "file:///path/on/this/host")
    if parts.query or parts.fragment:
        raise errors.BadRequest(f"export_to {url} has a query or fragment; a file URL is "
                                "file:///path/on/this/host")
    raw = urllib.parse.unquote(parts.path)
    if "\x00" in raw or not raw.startswith("/"):
        raise errors.BadRequest(f"export_to {url} is not an absolute file:///path")
    return raw


def _inside(path: str, root: str) -> bool:
    return os.path.commonpath([path, root]) == root


def _check_opened_directory(fd: int, path: pathlib.Path, roots: tuple[str, ...]) -> None:
    """The directory actually opened must still be inside a root (a symlink in the path may
    have been swapped since the target was checked). Linux says where a descriptor points."""
    proc = f"/proc/self/fd/{fd}"
    where = os.readlink(proc) if os.path.exists(proc) else os.path.realpath(path.parent)
    if not any(_inside(where, root) for root in roots):
        raise errors.ScriptError(f"{path.parent} now resolves to {where}, outside the "
                                 "directories exports may write to")


def _publish(directory: int, tmp: str, path: pathlib.Path) -> None:
    """Give ``tmp`` its final name, failing (and removing it) if that name exists."""
    try:
        try:
            os.link(tmp, path.name, src_dir_fd=directory, dst_dir_fd=directory)
        except FileExistsError:
            raise errors.ScriptError(f"{path} appeared while the export ran; "
                                     "exports never overwrite") from None
        except OSError as exc:  # a filesystem without hard links: check, then rename
            if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EMLINK):
                raise
            if os.path.lexists(path):
                raise errors.ScriptError(f"{path} appeared while the export ran; "
                                         "exports never overwrite") from None
            os.rename(tmp, path.name, src_dir_fd=directory, dst_dir_fd=directory)
            return
    except BaseException:
        os.unlink(tmp, dir_fd=directory)
        raise
    os.unlink(tmp, dir_fd=directory)


# -- http(s) ----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class HttpTarget:
    url: str

    @classmethod
    def parse(cls, url: str, settings: contract.ScriptSettings) -> HttpTarget:
        try:
            urlfilter.UrlFilter.from_settings(settings).check(url)
        except errors.BadRequest as exc:
            raise errors.BadRequest(f"export_to {url} refused: {exc.message}") from None
        return cls(url=url)

    def send(self, ctx: contract.ScriptContext, chunks: Iterable[bytes],
             length: int | None) -> datapath.Digest:
        self.parse(self.url, ctx.settings)  # settings may have changed since the task began
        body = _Hashing(chunks, ctx, length)
        headers = {"User-Agent": USER_AGENT, "Content-Type": "application/octet-stream"}
        if length is not None:
            headers["Content-Length"] = str(length)  # else httpx sends it chunked
        try:
            with fetch.client(ctx.settings) as client:
                response = client.put(self.url, content=iter(body), headers=headers)
        except httpx.TimeoutException as exc:
            raise errors.ScriptError(f"Timed out sending to {self.url} (no progress for "
                                     f"{ctx.settings.import_timeout:g} seconds)") from exc
        except httpx.HTTPError as exc:
            raise errors.ScriptError(f"Sending to {self.url} failed: {exc}") from exc
        if not response.is_success:
            raise errors.ScriptError(f"{self.url} answered HTTP {response.status_code} "
                                     f"{response.reason_phrase}".rstrip()
                                     + " to the export's PUT")
        return body.digest()


class _Hashing:
    """The body of a PUT: passes chunks on, hashing and counting them.

    Hashing here, in the thread that sends, is simpler than datapath's pipeline and costs
    nothing that matters: the network, not the hash, is what an upload waits on.
    """

    def __init__(self, chunks: Iterable[bytes], ctx: contract.ScriptContext,
                 length: int | None) -> None:
        self._chunks = chunks
        self._ctx = ctx
        self._length = length
        self._algo = ctx.settings.hashing_algorithm
        self._md5 = hashlib.md5(usedforsecurity=False)
        self._multihash = hashlib.new(self._algo)
        self._size = 0

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._chunks:
            if self._ctx.should_cancel():
                raise errors.ScriptError("Export cancelled: glint is stopping")
            self._md5.update(chunk)
            self._multihash.update(chunk)
            self._size += len(chunk)
            self._ctx.report_progress(self._size, self._length)
            yield chunk

    def digest(self) -> datapath.Digest:
        if self._length is not None and self._size != self._length:
            raise errors.ScriptError(f"Sent {self._size} bytes, expected {self._length}")
        return datapath.Digest(size=self._size, checksum=self._md5.hexdigest(),
                               hash_algo=self._algo, hash_value=self._multihash.hexdigest())
