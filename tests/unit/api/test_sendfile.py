"""Downloads through the real uvicorn server with :class:`glint.server.sendfile.SendfileProtocol`.

The server runs on 127.0.0.1 in a thread; ``os.sendfile`` is wrapped to count the bytes the
kernel sent, so each test sees which path a body took.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import logging
import os
import pathlib
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse
from starlette.routing import Route

from glint import app
from glint.api import image_data
from glint.api.app import create_app
from glint.images.service import ImageData
from glint.server import readahead, sendfile
from glint.server.sendfile import SendfileProtocol
from glint.stores.filesystem import FilesystemStore
from glint.stores.memory import MemoryStore
from glint.stores.multi import MultiStore
from tests.serving import abandon_download, serving, uvicorn_on
from tests.tools import unavailable
from tests.unit.api.support import CTX_A, PROJECT_A, add_image

DATA = os.urandom(3 * 1024 * 1024 + 12345)
BIG = 16 * 1024 * 1024  # more than loopback's socket buffers hold: the send has to wait



def total(sent: list[int], expected: int) -> int:
    """The bytes sent by sendfile, once the server thread has counted ``expected`` (the
    client may read the last of them before the count is in)."""
    deadline = time.monotonic() + 5
    while sum(sent) < expected and time.monotonic() < deadline:
        time.sleep(0.01)
    return sum(sent)


@pytest.fixture
def fs_glint(make_glint: Callable[..., app.Glint], tmp_path: pathlib.Path) -> app.Glint:
    return make_glint(store=FilesystemStore(tmp_path / "images"))


@pytest.fixture
def port(fs_glint: app.Glint) -> Iterator[int]:
    with serving(create_app(fs_glint, manage_lifecycle=False)) as bound:
        yield bound


def get(conn: http.client.HTTPConnection, path: str,
        headers: dict[str, str] | None = None) -> tuple[http.client.HTTPResponse, bytes]:
    conn.request("GET", path, headers={**PROJECT_A, **(headers or {})})
    response = conn.getresponse()
    return response, response.read()


def read_response(reader: Any) -> tuple[int, bytes]:
    """One ``Content-Length`` response off a stream that carries several."""
    status = int(reader.readline().split()[1])
    length = 0
    while (line := reader.readline()) != b"\r\n":
        name, _, value = line.partition(b":")
        if name.lower() == b"content-length":
            length = int(value)
    return status, reader.read(length)


def test_download_is_sent_by_sendfile(fs_glint: app.Glint, port: int,
                                      sent: list[int]) -> None:
    image = add_image(fs_glint, CTX_A, DATA)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    response, body = get(conn, f"/v2/images/{image.id}/file")
    conn.close()
    assert response.status == 200
    assert body == DATA
    assert total(sent, len(DATA)) == len(DATA)
    assert response.headers["content-length"] == str(len(DATA))
    assert response.headers["content-md5"] == hashlib.md5(DATA).hexdigest()
    assert response.headers["content-type"] == "application/octet-stream"
    # The wire contract of the streamed download: none of FileResponse's validators.
    for header in ("etag", "last-modified", "accept-ranges", "transfer-encoding"):
        assert header not in response.headers


def test_connection_is_kept_alive(fs_glint: app.Glint, port: int, sent: list[int]) -> None:
    image = add_image(fs_glint, CTX_A, DATA)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    first, first_body = get(conn, f"/v2/images/{image.id}/file")
    sock = conn.sock
    second, second_body = get(conn, f"/v2/images/{image.id}/file", {"Range": "bytes=5-9"})
    after, after_body = get(conn, f"/v2/images/{image.id}")
    assert conn.sock is sock and not after.will_close
    conn.close()
    assert (first.status, second.status, after.status) == (200, 206, 200)
    assert first_body == DATA and second_body == DATA[5:10]
    assert b'"status": "active"' in after_body or b'"status":"active"' in after_body
    assert total(sent, len(DATA) + 5) == len(DATA) + 5


@pytest.mark.parametrize(("header", "first", "last"), [
    ("bytes=0-0", 0, 0), ("bytes=1000-", 1000, len(DATA) - 1), ("bytes=-7", len(DATA) - 7,
                                                                  len(DATA) - 1),
    ("bytes=123456-2345678", 123456, 2345678),
])
def test_a_byte_range_is_sent_by_sendfile(fs_glint: app.Glint, port: int, sent: list[int],
                                          header: str, first: int, last: int) -> None:
    image = add_image(fs_glint, CTX_A, DATA)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    response, body = get(conn, f"/v2/images/{image.id}/file", {"Range": header})
    conn.close()
    assert response.status == 206
    assert body == DATA[first:last + 1]
    assert response.headers["content-range"] == f"bytes {first}-{last}/{len(DATA)}"
    assert "content-md5" not in response.headers
    assert total(sent, last - first + 1) == last - first + 1


def test_a_body_of_several_windows_is_sent_whole(fs_glint: app.Glint, port: int,
                                                sent: list[int],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sendfile, "WINDOW", 1024 * 1024)
    image = add_image(fs_glint, CTX_A, DATA)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    whole = get(conn, f"/v2/images/{image.id}/file")[1]
    part = get(conn, f"/v2/images/{image.id}/file", {"Range": "bytes=1000-2500000"})[1]
    conn.close()
    assert (whole == DATA, part == DATA[1000:2500001]) == (True, True)
    assert total(sent, len(DATA) + len(part)) == len(DATA) + len(part)


@pytest.fixture
def read_ahead(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """The spans the download's read-ahead read into the page cache (real reads, recorded);
    1 MiB windows."""
    spans: list[tuple[int, int]] = []
    real = readahead.into_page_cache

    def recording(fd: int, offset: int, size: int, stop: threading.Event | None = None) -> None:
        spans.append((offset, size))
        real(fd, offset, size, stop)

    monkeypatch.setattr(readahead, "into_page_cache", recording)
    monkeypatch.setattr(sendfile, "WINDOW", 1024 * 1024)
    return spans


@pytest.mark.parametrize(("header", "first", "last"), [
    (None, 0, len(DATA) - 1), ("bytes=1000-2500000", 1000, 2500000),
    ("bytes=-1500000", len(DATA) - 1500000, len(DATA) - 1), ("bytes=7-7", 7, 7),
])
def test_the_read_ahead_reads_the_range_sent_exactly_once(
        fs_glint: app.Glint, port: int, read_ahead: list[tuple[int, int]], header: str | None,
        first: int, last: int) -> None:
    image = add_image(fs_glint, CTX_A, DATA)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    _, body = get(conn, f"/v2/images/{image.id}/file", {"Range": header} if header else {})
    conn.close()
    assert body == DATA[first:last + 1]
    read = sorted(read_ahead)
    assert [byte for start, size in read for byte in (start, start + size)][1:-1:2] == \
        [start for start, _ in read][1:]  # no gap, no overlap
    assert (read[0][0], read[-1][0] + read[-1][1]) == (first, last + 1)


def test_several_ranges_get_the_whole_image(fs_glint: app.Glint, port: int) -> None:
    image = add_image(fs_glint, CTX_A, DATA)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    response, body = get(conn, f"/v2/images/{image.id}/file", {"Range": "bytes=0-1,5-6"})
    conn.close()
    assert (response.status, body) == (200, DATA)


def test_the_api_answers_while_the_disk_reads_a_download(fs_glint: app.Glint, port: int,
                                                         monkeypatch: pytest.MonkeyPatch,
                                                         tmp_path: pathlib.Path) -> None:
    image = add_image(fs_glint, CTX_A, DATA)
    inode = (tmp_path / "images" / image.id).stat().st_ino
    reading, read = threading.Event(), threading.Event()
    real = os.sendfile

    def from_a_slow_disk(out_fd: int, in_fd: int, offset: int | None, count: int) -> int:
        # The image is not in the page cache: the first read of it waits for the "disk",
        # which the test lets finish once it has had its answer.
        if os.fstat(in_fd).st_ino == inode:
            reading.set()
            read.wait(10)
        return real(out_fd, in_fd, offset, count)

    monkeypatch.setattr(os, "sendfile", from_a_slow_disk)
    bodies: list[bytes] = []

    def download() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        bodies.append(get(conn, f"/v2/images/{image.id}/file")[1])
        conn.close()

    downloading = threading.Thread(target=download)
    downloading.start()
    try:
        assert reading.wait(10)
        with contextlib.closing(http.client.HTTPConnection("127.0.0.1", port, timeout=3)) as conn:
            response, _ = get(conn, f"/v2/images/{image.id}")  # times out if the loop reads
        assert response.status == 200
    finally:
        read.set()
        downloading.join(10)
    assert bodies == [DATA]


def test_read_ahead_leaves_the_bytes_in_the_page_cache(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "data"
    probe, offsets = bytearray(4096), range(0, len(DATA), 256 * 1024)

    def cached(fd: int, offset: int) -> bool:
        try:
            return os.preadv(fd, [probe], offset, os.RWF_NOWAIT) > 0
        except BlockingIOError:
            return False

    with path.open("wb+", buffering=0) as file, one_cpu():
        file.write(DATA)
        os.fsync(file.fileno())  # (dirty pages stay cached)
        if not hasattr(os, "RWF_NOWAIT") or not evicted(file.fileno(), cached, offsets):
            message = "cannot take this file out of the page cache"
            unavailable(message)
        readahead.into_page_cache(file.fileno(), 0, len(DATA))
        assert [o for o in offsets if not cached(file.fileno(), o)] == []


@contextlib.contextmanager
def one_cpu() -> Iterator[None]:
    """Keep this thread on one CPU: fadvise(DONTNEED) drains only its own CPU's batch of pages
    not yet on the LRU, and a page still in another CPU's batch cannot be dropped."""
    cpus = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(cpus)})
    try:
        yield
    finally:
        os.sched_setaffinity(0, cpus)


def evicted(fd: int, cached: Callable[[int, int], bool], offsets: range) -> bool:
    """Drop ``fd``'s pages from the page cache; whether none of ``offsets`` is left there."""
    for _ in range(20):
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        if not any(cached(fd, o) for o in offsets):
            return True
        time.sleep(0.05)
    return False


def test_a_client_gone_mid_download_leaves_the_server_serving(
        fs_glint: app.Glint, port: int, caplog: pytest.LogCaptureFixture,
        tmp_path: pathlib.Path) -> None:
    data = os.urandom(BIG)
    image = add_image(fs_glint, CTX_A, data)
    for _ in range(3):
        abandon_download(port, image.id, PROJECT_A)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    response, body = get(conn, f"/v2/images/{image.id}/file")
    conn.close()
    assert (response.status, body == data) == (200, True)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert open_files(tmp_path / "images" / image.id) == 0
    assert reads_running() == 0  # no read-ahead thread left reading a closed descriptor


def reads_running() -> int:
    """How many read-ahead threads are in ``into_page_cache``, once they settle."""
    deadline = time.monotonic() + 5
    while True:
        running = sum(1 for frames in sys_frames()
                      if any(f.f_code.co_name == "into_page_cache" for f in frames))
        if running == 0 or time.monotonic() > deadline:
            return running
        time.sleep(0.05)


def sys_frames() -> list[list[Any]]:
    """Each thread's stack, innermost frame first."""
    stacks = []
    for frame in sys._current_frames().values():
        stack = []
        current: Any = frame
        while current is not None:
            stack.append(current)
            current = current.f_back
        stacks.append(stack)
    return stacks


def open_files(path: pathlib.Path) -> int:
    """How many of this process's descriptors are open on ``path``, once they settle."""
    deadline = time.monotonic() + 5
    while True:
        count = 0
        for fd in os.listdir("/proc/self/fd"):
            with contextlib.suppress(OSError):
                count += os.readlink(f"/proc/self/fd/{fd}") == str(path)
        if count == 0 or time.monotonic() > deadline:
            return count
        time.sleep(0.05)


def test_a_file_shorter_than_the_image_closes_the_connection(
        fs_glint: app.Glint, port: int, tmp_path: pathlib.Path) -> None:
    image = add_image(fs_glint, CTX_A, DATA)
    os.truncate(tmp_path / "images" / image.id, 1000)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", f"/v2/images/{image.id}/file", headers=PROJECT_A)
    response = conn.getresponse()
    with pytest.raises(http.client.IncompleteRead):
        response.read()
    conn.close()
    other = add_image(fs_glint, CTX_A, b"fine")
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    assert get(conn, f"/v2/images/{other.id}/file")[1] == b"fine"
    conn.close()


def test_an_image_deleted_before_its_file_opens_is_an_error(
        fs_glint: app.Glint, port: int, monkeypatch: pytest.MonkeyPatch) -> None:
    image = add_image(fs_glint, CTX_A, DATA)
    real = fs_glint.images.data_sources

    def then_delete(*args: Any) -> Any:
        found = real(*args)
        fs_glint.images.delete(CTX_A, image.id)
        return found

    monkeypatch.setattr(fs_glint.images, "data_sources", then_delete)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    response, body = get(conn, f"/v2/images/{image.id}/file")
    conn.close()
    assert response.status == 500  # as when the stream's open finds no file
    assert json.loads(body)["error"]["code"] == 500


def test_an_image_deleted_once_its_file_is_open_is_sent_whole(
        fs_glint: app.Glint, port: int, monkeypatch: pytest.MonkeyPatch,
        tmp_path: pathlib.Path) -> None:
    image = add_image(fs_glint, CTX_A, DATA)
    real = image_data._open

    def then_delete(*args: Any) -> Any:
        opened = real(*args)
        fs_glint.images.delete(CTX_A, image.id)
        return opened

    monkeypatch.setattr(image_data, "_open", then_delete)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    response, body = get(conn, f"/v2/images/{image.id}/file")
    conn.close()
    assert (response.status, body == DATA) == (200, True)
    assert not (tmp_path / "images" / image.id).exists()


@pytest.mark.parametrize(("store", "protocol"), [("memory", SendfileProtocol),
                                                 ("filesystem", "httptools")])
def test_otherwise_the_bytes_are_streamed(make_glint: Callable[..., app.Glint],
                                          tmp_path: pathlib.Path, sent: list[int], store: str,
                                          protocol: Any) -> None:
    glint = make_glint(store=MemoryStore() if store == "memory"
                       else FilesystemStore(tmp_path / "images"))
    image = add_image(glint, CTX_A, DATA)
    with serving(create_app(glint, manage_lifecycle=False), protocol) as bound:
        conn = http.client.HTTPConnection("127.0.0.1", bound, timeout=10)
        whole, body = get(conn, f"/v2/images/{image.id}/file")
        ranged, part = get(conn, f"/v2/images/{image.id}/file", {"Range": "bytes=10-19"})
        conn.close()
    assert (whole.status, body == DATA, ranged.status, part) == (200, True, 206, DATA[10:20])
    assert whole.headers["content-md5"] == hashlib.md5(DATA).hexdigest()
    assert sent == []


def test_pathsend_serves_starlettes_file_response(tmp_path: pathlib.Path,
                                                  sent: list[int]) -> None:
    path = tmp_path / "data"
    path.write_bytes(DATA)

    async def send_path(_request: Request) -> FileResponse:
        return FileResponse(path)

    with serving(Starlette(routes=[Route("/data", send_path)])) as bound:
        conn = http.client.HTTPConnection("127.0.0.1", bound, timeout=10)
        first, body = get(conn, "/data")
        second, again = get(conn, "/data")
        conn.close()
    assert (first.status, second.status, body == DATA, again == DATA) == (200, 200, True, True)
    assert total(sent, 2 * len(DATA)) == 2 * len(DATA)


def test_an_empty_image_is_an_empty_body(fs_glint: app.Glint, port: int) -> None:
    image = add_image(fs_glint, CTX_A, b"")
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    response, body = get(conn, f"/v2/images/{image.id}/file")
    again, _ = get(conn, f"/v2/images/{image.id}")
    conn.close()
    assert (response.status, response.headers["content-length"], body) == (200, "0", b"")
    assert again.status == 200


def test_zerocopysend_from_the_file_position_then_a_body(tmp_path: pathlib.Path,
                                                         sent: list[int]) -> None:
    path = tmp_path / "data"
    path.write_bytes(DATA)

    async def asgi(scope: Any, receive: Any, send: Any) -> None:
        with path.open("rb") as file:
            file.seek(100)
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-length", b"1004")]})
            await send({"type": "http.response.zerocopysend", "file": file, "count": 1000,
                        "more_body": True})
            await send({"type": "http.response.body", "body": b"tail"})

    with serving(asgi) as bound:
        conn = http.client.HTTPConnection("127.0.0.1", bound, timeout=10)
        body = get(conn, "/")[1]
        conn.request("HEAD", "/")
        head = conn.getresponse()
        head_body = head.read()
        body_again = get(conn, "/")[1]
        conn.close()
    assert body == body_again == DATA[100:1100] + b"tail"
    assert (head.status, head.headers["content-length"], head_body) == (200, "1004", b"")
    assert total(sent, 2000) == 2000


def test_pathsend_of_a_missing_file_closes_the_connection(tmp_path: pathlib.Path) -> None:
    present = pathlib.Path(__file__)

    async def send_path(request: Request) -> FileResponse:
        # The size comes from elsewhere, as if the file went between the stat and the send.
        name = request.path_params["name"]
        return FileResponse(tmp_path / name, stat_result=os.stat(present))

    (tmp_path / "present").write_bytes(present.read_bytes())
    with serving(Starlette(routes=[Route("/{name}", send_path)])) as bound:
        conn = http.client.HTTPConnection("127.0.0.1", bound, timeout=10)
        conn.request("GET", "/gone")
        response = conn.getresponse()
        with pytest.raises(http.client.IncompleteRead):
            response.read()
        conn.close()
        conn = http.client.HTTPConnection("127.0.0.1", bound, timeout=10)
        assert get(conn, "/present")[1] == present.read_bytes()
        conn.close()


def test_each_store_of_a_multi_store_takes_its_own_path(make_glint: Callable[..., app.Glint],
                                                         tmp_path: pathlib.Path,
                                                         sent: list[int]) -> None:
    types = {"fast": "memory", "files": "filesystem"}
    backends = {"fast": MemoryStore(), "files": FilesystemStore(tmp_path / "files")}
    glint = make_glint(store=MultiStore(backends, default="fast", types=types),
                       enabled_backends=types, default_backend="fast")
    in_memory = add_image(glint, CTX_A, DATA[:1000])  # the default store
    on_disk = glint.images.create(CTX_A, {"disk_format": "raw", "container_format": "bare"})
    with backends["files"].writer(on_disk.id) as writer:
        writer.write(DATA)
        location = writer.commit()
    glint.images.set_data(CTX_A, on_disk.id, ImageData(
        location=location, size=len(DATA), checksum=hashlib.md5(DATA).hexdigest(),
        os_hash_algo="sha512", os_hash_value=hashlib.sha512(DATA).hexdigest(), store="files"),
        from_status="queued")
    with serving(create_app(glint, manage_lifecycle=False)) as bound:
        conn = http.client.HTTPConnection("127.0.0.1", bound, timeout=10)
        streamed = get(conn, f"/v2/images/{in_memory.id}/file")[1]
        assert sum(sent) == 0
        from_file = get(conn, f"/v2/images/{on_disk.id}/file")[1]
        conn.close()
    assert (streamed, from_file == DATA) == (DATA[:1000], True)
    assert total(sent, len(DATA)) == len(DATA)


def test_pipelined_requests_are_answered_in_order(fs_glint: app.Glint, port: int,
                                                  sent: list[int]) -> None:
    image = add_image(fs_glint, CTX_A, DATA)
    head = "".join(f"{k}: {v}\r\n" for k, v in PROJECT_A.items())
    whole = f"GET /v2/images/{image.id}/file HTTP/1.1\r\nHost: x\r\n{head}\r\n"
    ranged = f"GET /v2/images/{image.id}/file HTTP/1.1\r\nHost: x\r\nRange: bytes=3-5\r\n{head}\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall((whole + ranged + whole).encode())
        with sock.makefile("rb") as reader:
            bodies = [read_response(reader) for _ in range(3)]
    assert bodies == [(200, DATA), (206, DATA[3:6]), (200, DATA)]
    assert total(sent, 2 * len(DATA) + 3) == 2 * len(DATA) + 3


def test_every_connection_sends_small_writes_at_once() -> None:
    """TCP_NODELAY, also on a listening socket that does not say it is TCP (protocol number 0,
    as uvicorn binds for several API workers), where asyncio would not set it."""
    async def ok(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    assert listener.proto == 0
    with uvicorn_on(listener, ok) as server:
        conn = http.client.HTTPConnection("127.0.0.1", listener.getsockname()[1], timeout=10)
        try:
            conn.request("GET", "/")
            assert conn.getresponse().status == 204
            [protocol] = server.server_state.connections
            sock = protocol.transport.get_extra_info("socket")
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        finally:
            conn.close()


def test_a_download_is_read_with_sequential_advice(fs_glint: app.Glint, port: int,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    advised: list[tuple[int, int]] = []
    real = os.posix_fadvise

    def recording(fd: int, offset: int, length: int, advice: int) -> None:
        advised.append((os.fstat(fd).st_size, advice))
        real(fd, offset, length, advice)

    monkeypatch.setattr(os, "posix_fadvise", recording)
    image = add_image(fs_glint, CTX_A, DATA)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    response, body = get(conn, f"/v2/images/{image.id}/file")
    conn.close()
    assert (response.status, body == DATA) == (200, True)
    assert (len(DATA), os.POSIX_FADV_SEQUENTIAL) in advised
