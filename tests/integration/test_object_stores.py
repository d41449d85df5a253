"""The swift and s3 stores on a real OpenStack Swift (one node, s3api in its proxy).

The store contract suite of tests/unit/test_stores.py runs here on both, then what only object
stores have: segmented writes, aborted and killed writes, the sweep, refusals at start-up and
at write time, copies between stores. Segments are 5 MiB (S3's smallest part), so a 12 MiB
image is three of them.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import pickle
import secrets
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from typing import Any

import pytest
import swiftclient.client

from glint import datapath, errors
from glint.stores import multi, swift
from glint.stores.s3 import S3Store
from glint.stores.swift import SwiftStore
from tests.unit.test_stores import (  # noqa: F401 - the contract suite, collected here again
    test_delete_is_idempotent,
    test_read_range_and_small_chunks,
    test_rewrite_replaces_whole_object,
    test_uncommitted_writer_leaves_nothing,
    test_written_bytes_read_back,
)

MiB = 1024 * 1024
SEGMENT = 5 * MiB
ObjectStore = SwiftStore | S3Store


def make_swift(env: dict[str, str], container: str, **options: Any) -> SwiftStore:
    settings: dict[str, Any] = {
        "auth_url": env["GLINT_SWIFT_AUTH_URL"], "user": env["GLINT_SWIFT_USER"],
        "key": env["GLINT_SWIFT_KEY"], "auth_version": "1", "container": container,
        "create_container": True, "segment_size": SEGMENT, "retries": 1}
    return SwiftStore(**(settings | options))


def make_s3(env: dict[str, str], bucket: str, **options: Any) -> S3Store:
    settings: dict[str, Any] = {
        "endpoint": env["GLINT_S3_ENDPOINT"], "access_key": env["GLINT_S3_ACCESS_KEY"],
        "secret_key": env["GLINT_S3_SECRET_KEY"], "region": env["GLINT_S3_REGION"],
        "bucket": bucket, "create_bucket": True, "part_size": SEGMENT, "retries": 1}
    return S3Store(**(settings | options))


def _empty_swift(store: SwiftStore) -> None:
    for container in (store.container, store.segment_container):
        with store.connection() as conn:
            for entry in conn.get_container(container, full_listing=True)[1]:
                conn.delete_object(container, entry["name"])
            conn.delete_container(container)


def _empty_s3(store: S3Store) -> None:
    store.remove_temporary_files()
    for key in store.locations():
        store.client.delete_object(Bucket=store.bucket, Key=key)
    store.client.delete_bucket(Bucket=store.bucket)


@pytest.fixture(params=["swift", "s3"])
def store(request: pytest.FixtureRequest, swift_env: dict[str, str]) -> Iterator[ObjectStore]:
    """An empty container (or bucket) of its own, removed afterwards."""
    name = f"glint-test-{secrets.token_hex(4)}"
    if request.param == "swift":
        swift = make_swift(swift_env, name)
        yield swift
        _empty_swift(swift)
    else:
        s3 = make_s3(swift_env, name)
        yield s3
        _empty_s3(s3)


def leftovers(store: ObjectStore) -> list[str]:
    """What unfinished writes left: Swift segments, S3 multipart uploads."""
    if isinstance(store, SwiftStore):
        with store.connection() as conn:
            return [e["name"] for e in conn.get_container(store.segment_container,
                                                           full_listing=True)[1]]
    return [u["Key"] for u in store._uploads()]


def _copy(store: ObjectStore, image_id: str, data: bytes) -> tuple[str, datapath.Digest]:
    chunks = (data[i:i + MiB] for i in range(0, len(data), MiB))
    with store.writer(image_id) as writer:
        digest = datapath.copy(chunks, writer, size_cap=len(data), hash_algo="sha512")
        return writer.commit(), digest


def test_a_large_image_is_stored_in_segments_and_read_back_whole(store: ObjectStore) -> None:
    data = os.urandom(12 * MiB + 7)
    location, digest = _copy(store, "img-large", data)
    assert digest.checksum == hashlib.md5(data).hexdigest()
    assert digest.hash_value == hashlib.sha512(data).hexdigest()
    assert store.size(location) == len(data)
    assert hashlib.md5(b"".join(store.read(location))).hexdigest() == digest.checksum
    across = b"".join(store.read(location, offset=SEGMENT - 3, length=SEGMENT + 6))
    assert across == data[SEGMENT - 3:2 * SEGMENT + 3]  # a ranged GET over two boundaries
    if isinstance(store, SwiftStore):
        with store.connection() as conn:
            manifest = json.loads(conn.get_object(store.container, location,
                                                  query_string="multipart-manifest=get")[1])
        assert [segment["bytes"] for segment in manifest] == [SEGMENT, SEGMENT, 2 * MiB + 7]
        assert len(leftovers(store)) == 3
    else:
        etag = store.client.head_object(Bucket=store.bucket, Key=location)["ETag"]
        assert etag.strip('"').endswith("-3")
    store.delete(location)
    assert list(store.locations()) == [] and leftovers(store) == []


def test_a_writer_keeps_no_view_of_a_buffer_refilled_after_write(store: ObjectStore) -> None:
    # An import's reader refills its buffers once write returns (glint.buffers): segments,
    # the part being filled and a single small object must all hold copies.
    buffer, expected = bytearray(3 * MiB), []
    with store.writer("img-refilled") as writer:
        for round_ in range(4):  # 12 MiB: two full segments and a part of a third
            buffer[:] = bytes([round_]) * len(buffer)
            writer.write(memoryview(buffer))
            expected.append(bytes(buffer))
        location = writer.commit()
    assert b"".join(store.read(location)) == b"".join(expected)
    small = bytearray(b"first ")
    with store.writer("img-small") as writer:
        writer.write(memoryview(small))
        small[:] = b"later "
        writer.write(memoryview(small)[:5])
        single = writer.commit()
    assert b"".join(store.read(single)) == b"first later"


def test_a_failed_write_leaves_no_segment(store: ObjectStore) -> None:
    with pytest.raises(RuntimeError), store.writer("img-aborted") as writer:
        writer.write(os.urandom(11 * MiB))
        raise RuntimeError("the source went away")
    assert list(store.locations()) == [] and leftovers(store) == []


def test_a_segment_changed_on_the_way_is_refused_by_the_server(
        store: ObjectStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each segment is checked by the server against a hash glint took before sending it:
    Swift against the md5 sent as its ETag, S3 against the signed SHA-256 of the payload."""
    def changed(body: bytes) -> bytes:
        return bytes([body[0] ^ 1]) + body[1:]  # one bit flipped, as a faulty link would

    if isinstance(store, SwiftStore):
        send = swiftclient.client.HTTPConnection._request

        def tampering(self: Any, method: str, url: str, **kwargs: Any) -> Any:
            body = kwargs.get("data")
            if method == "PUT" and isinstance(body, pickle.PickleBuffer) and "/00002" in url:
                kwargs["data"] = changed(bytes(body.raw()))
            return send(self, method, url, **kwargs)

        monkeypatch.setattr(swiftclient.client.HTTPConnection, "_request", tampering)
    else:
        def tamper(request: Any, **_: Any) -> None:
            if "partNumber=2" in request.url:
                body = request.body.read() if hasattr(request.body, "read") else request.body
                request.body = changed(body)

        store.client.meta.events.register("before-send.s3.UploadPart", tamper)
    with pytest.raises(errors.StoreError, match=r"422 Unprocessable|BadDigest"):
        _copy(store, "img-changed", os.urandom(12 * MiB))
    assert list(store.locations()) == [] and leftovers(store) == []


def test_a_swift_segment_goes_as_its_buffer_and_a_shorter_one_as_a_copy() -> None:
    """Never a PickleBuffer of a memoryview: CPython 3.11's garbage collector crashes on one
    caught in a reference cycle (requests makes them), as this suite once did."""
    buffer = bytearray(b"segment!")
    body = swift._body(memoryview(buffer))
    assert isinstance(body, pickle.PickleBuffer) and body.raw().obj is buffer
    assert swift._body(memoryview(buffer)[:3]) == b"seg"


def test_the_reader_stops_when_the_consumer_does(store: ObjectStore) -> None:
    location, _ = _copy(store, "img-partial-read", os.urandom(12 * MiB))
    chunks = store.read(location)
    assert len(next(chunks)) == MiB
    chunks.close()  # type: ignore[attr-defined]  # a client that hung up
    assert b"".join(store.read(location, offset=12 * MiB - 2)) != b""


KILLED_WRITER = textwrap.dedent("""
    import os, sys, time
    from tests.integration.test_object_stores import make_s3, make_swift
    env = dict(os.environ)
    make = make_swift if sys.argv[1] == "swift" else make_s3
    store = make(env, sys.argv[2], create_container=False) if sys.argv[1] == "swift" else \\
        make(env, sys.argv[2], create_bucket=False)
    writer = store.writer("img-killed")
    writer.write(os.urandom(11 * 1024 * 1024))  # two segments go out, the third is pending
    while writer._held:
        time.sleep(0.05)
    print("written", flush=True)
    time.sleep(60)
""")


def _sockets() -> set[str]:
    """This process's open sockets (``socket:[inode]``)."""
    found = set()
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/self/fd/{fd}")
            if target.startswith("socket:"):
                found.add(target)
    return found


def test_a_forked_child_talks_to_the_store_on_connections_of_its_own(store: ObjectStore) -> None:
    """``glint worker --pool prefork``: the parent's pool keeps a live connection to the store
    when Celery forks a child. After ``after_fork()`` the child's requests go on a socket of
    its own, never on the parent's (their answers would cross), and the parent's still works."""
    store.probe()  # the parent's keep-alive connection, back in its pool
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            inherited = _sockets()
            store.after_fork()
            store.probe()
            code = 0 if _sockets() - inherited else 2  # 2: it used an inherited socket
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "the child's request went out on a socket " \
        "it inherited from its parent (or failed)"
    store.probe()


def test_a_killed_write_is_swept_after_the_age_limit(store: ObjectStore,
                                                      swift_env: dict[str, str]) -> None:
    name = store.container if isinstance(store, SwiftStore) else store.bucket
    with subprocess.Popen([sys.executable, "-c", KILLED_WRITER, store.name, name],
                          env=os.environ | swift_env, stdout=subprocess.PIPE, text=True) as child:
        assert child.stdout is not None and child.stdout.readline() == "written\n"
        child.send_signal(signal.SIGKILL)
    assert leftovers(store) != [] and list(store.locations()) == []
    assert store.remove_temporary_files(older_than=3600) == 0  # could be a live write
    time.sleep(2.1)  # s3api's Initiated is rounded up to the second
    assert store.remove_temporary_files(older_than=1) == 1
    assert leftovers(store) == []


def test_delete_removes_an_unfinished_write_of_the_same_key(store: ObjectStore) -> None:
    writer = store.writer("img-1")
    writer.write(os.urandom(6 * MiB))  # one segment out, never committed nor aborted
    while writer._held:  # type: ignore[attr-defined]
        time.sleep(0.05)
    store.delete("img-1")
    assert leftovers(store) == []


def test_copy_between_the_object_stores_and_a_filesystem(swift_env: dict[str, str],
                                                         tmp_path: Any) -> None:
    from glint.stores.filesystem import FilesystemStore

    swift = make_swift(swift_env, f"glint-test-{secrets.token_hex(4)}")
    s3 = make_s3(swift_env, f"glint-test-{secrets.token_hex(4)}")
    files = FilesystemStore(tmp_path)
    try:
        data = os.urandom(11 * MiB)
        checksum = hashlib.md5(data).hexdigest()
        location, _ = _copy(swift, "img-1", data)
        in_s3 = multi.copy_between(swift, location, s3, "img-1", checksum=checksum)
        in_files = multi.copy_between(s3, in_s3, files, "img-1", checksum=checksum)
        back = multi.copy_between(files, in_files, swift, "img-2", checksum=checksum)
        assert b"".join(swift.read(back)) == data
    finally:
        _empty_swift(swift)
        _empty_s3(s3)


def test_two_swift_backends_each_with_its_own_container(swift_env: dict[str, str],
                                                        tmp_path: Any) -> None:
    from glint.settings import Settings

    one, two = (f"glint-test-{secrets.token_hex(4)}" for _ in range(2))
    configured = Settings(
        data_dir=tmp_path, enabled_backends={"one": "swift", "two": "swift"},
        swift_auth_url=swift_env["GLINT_SWIFT_AUTH_URL"], swift_auth_version="1",
        swift_user=swift_env["GLINT_SWIFT_USER"], swift_key=swift_env["GLINT_SWIFT_KEY"],
        swift_container=one, swift_create_container=True,
        backend_settings={"two": {"swift_container": two, "swift_segment_size": MiB}})
    stores = multi.from_settings(configured)
    first, second = stores.backend("one"), stores.backend("two")
    assert isinstance(first, SwiftStore) and isinstance(second, SwiftStore)
    try:
        data = os.urandom(3 * MiB)
        in_two, _ = _copy(second, "img-two", data)
        assert list(second.locations()) == ["img-two"] and list(first.locations()) == []
        assert len(leftovers(second)) == 3 and leftovers(first) == []  # 1 MiB segments there
        assert b"".join(second.read(in_two)) == data
    finally:
        _empty_swift(first)
        _empty_swift(second)


# -- refusals: at start-up, with a message naming the store and never the secret ----------

def test_wrong_credentials_stop_glint_at_start_up(swift_env: dict[str, str],
                                                  caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    secret = "wrong-" + secrets.token_hex(8)
    with pytest.raises(errors.ConfigurationError, match=r"swift store.*authentication failed") as sw:
        make_swift(swift_env, "glint-never", key=secret)
    with pytest.raises(errors.ConfigurationError, match=r"s3 store.*access denied") as s3:
        make_s3(swift_env, "glint-never", secret_key=secret)
    for message in (sw.value.message, s3.value.message, caplog.text):
        assert secret not in message


def test_an_unreachable_endpoint_stops_glint_at_start_up(swift_env: dict[str, str]) -> None:
    import socket

    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    with pytest.raises(errors.ConfigurationError, match=r"swift store.*cannot reach"):
        make_swift(swift_env, "x", auth_url=f"http://127.0.0.1:{port}/auth/v1.0", retries=0)
    with pytest.raises(errors.ConfigurationError, match=r"swift store.*cannot reach"):
        make_swift(swift_env, "x", auth_url=f"http://127.0.0.1:{port}/v3", auth_version="3",
                   project_name="service", retries=0)  # Keystone v3
    with pytest.raises(errors.ConfigurationError, match=r"s3 store.*cannot reach"):
        make_s3(swift_env, "xyz", endpoint=f"http://127.0.0.1:{port}", retries=0)


def test_a_missing_container_is_refused_unless_it_may_be_created(
        swift_env: dict[str, str]) -> None:
    name = f"glint-test-{secrets.token_hex(4)}"
    with pytest.raises(errors.ConfigurationError, match="swift_create_container = true"):
        make_swift(swift_env, name, create_container=False)
    with pytest.raises(errors.ConfigurationError, match="s3_create_bucket = true"):
        make_s3(swift_env, name, create_bucket=False)


def test_a_container_the_account_may_only_read_refuses_the_write(
        swift_env: dict[str, str]) -> None:
    owner = make_swift(swift_env, f"glint-test-{secrets.token_hex(4)}")
    reader = swift_env["GLINT_SWIFT_USER2"]
    for container in (owner.container, owner.segment_container):
        with owner.connection() as conn:
            conn.post_container(container, {"X-Container-Read": reader})
    try:
        other = make_swift(swift_env, owner.container, user=reader,
                           key=swift_env["GLINT_SWIFT_KEY2"], create_container=False,
                           storage_url=swift_env["GLINT_SWIFT_STORAGE_URL"])
        with pytest.raises(errors.StoreUnwritable, match=r"swift store.*access denied") as refused:
            _copy(other, "img-1", os.urandom(11 * MiB))
        assert swift_env["GLINT_SWIFT_KEY2"] not in refused.value.message
        assert list(owner.locations()) == [] and leftovers(owner) == []
    finally:
        _empty_swift(owner)


# -- the stores in a glint: multi-store built from the settings, through the API -------------

@pytest.fixture
def database_url(tmp_path: Any) -> str:
    """SQLite only: what is tested here is the stores, not the database."""
    return f"sqlite:///{tmp_path / 'glint.db'}"


def test_images_in_object_stores_through_the_api(swift_env: dict[str, str], make_glint: Any,
                                                  make_settings: Any, tmp_path: Any) -> None:
    from glint.api.app import create_app
    from glint.scripts import api_image_import
    from glint.scripts.registry import Registry
    from tests.unit.api.support import ADMIN, PROJECT_A, TestClient

    name = f"glint-test-{secrets.token_hex(4)}"
    options: dict[str, Any] = {
        "enabled_backends": {"local": "filesystem", "objects": "swift", "s3": "s3"},
        "default_backend": "objects", "backend_paths": {"local": tmp_path / "local"},
        "enabled_import_methods": ["glance-direct", "copy-image"],
        "swift_auth_url": swift_env["GLINT_SWIFT_AUTH_URL"], "swift_auth_version": "1",
        "swift_user": swift_env["GLINT_SWIFT_USER"], "swift_key": swift_env["GLINT_SWIFT_KEY"],
        "swift_container": name, "swift_create_container": True, "swift_segment_size": SEGMENT,
        "s3_endpoint": swift_env["GLINT_S3_ENDPOINT"], "s3_bucket": f"{name}-s3",
        "s3_access_key": swift_env["GLINT_S3_ACCESS_KEY"],
        "s3_secret_key": swift_env["GLINT_S3_SECRET_KEY"], "s3_create_bucket": True,
        "s3_part_size": SEGMENT}
    stores = multi.from_settings(make_settings(**options))
    swift, s3 = stores.backend("objects"), stores.backend("s3")
    assert isinstance(swift, SwiftStore) and isinstance(s3, S3Store)
    glint = make_glint(store=stores, registry=Registry.of({"api_image_import": api_image_import}),
                       **options)
    data = os.urandom(11 * MiB)
    try:
        with TestClient(create_app(glint)) as client:
            image_id = client.post("/v2/images", headers=PROJECT_A, json={
                "disk_format": "raw", "container_format": "bare"}).json()["id"]
            assert client.put(f"/v2/images/{image_id}/file", content=data, headers={
                **PROJECT_A, "Content-Type": "application/octet-stream"}).status_code == 204
            assert list(swift.locations()) == [image_id]
            copied = client.post(f"/v2/images/{image_id}/import", headers={**PROJECT_A, **ADMIN},
                                 json={"method": {"name": "copy-image"}, "all_stores": True})
            assert copied.status_code == 202
            image = client.get(f"/v2/images/{image_id}", headers=PROJECT_A).json()
            assert (image["stores"], image["checksum"]) == ("local,objects,s3",
                                                           hashlib.md5(data).hexdigest())
            # Past a segment's end to the image's, streamed from Swift (a Range skips the cache).
            tail = client.get(f"/v2/images/{image_id}/file",
                              headers={**PROJECT_A, "Range": f"bytes={SEGMENT - 1}-"})
            assert (tail.status_code, tail.content) == (206, data[SEGMENT - 1:])
            swift.delete(image_id)  # lost from the default store: another copy is read
            ranged = client.get(f"/v2/images/{image_id}/file",
                                headers={**PROJECT_A, "Range": f"bytes={SEGMENT - 1}-{SEGMENT}"})
            assert (ranged.status_code, ranged.content) == (206, data[SEGMENT - 1:SEGMENT + 1])
            assert client.delete(f"/v2/images/{image_id}", headers=PROJECT_A).status_code == 204
        assert list(s3.locations()) == [] and leftovers(s3) == []
        assert list(swift.locations()) == [] and leftovers(swift) == []
    finally:
        _empty_swift(swift)
        _empty_s3(s3)


@pytest.mark.parametrize("kind", ["swift", "s3"])
def test_a_dropped_connection_is_retried_within_the_write(kind: str,
                                                          swift_env: dict[str, str]) -> None:
    import threading
    import urllib.parse

    from tests.integration.tcpproxy import TcpProxy

    port = urllib.parse.urlsplit(swift_env["GLINT_S3_ENDPOINT"]).port
    assert port is not None
    name = f"glint-test-{secrets.token_hex(4)}"
    with TcpProxy(("127.0.0.1", port)) as proxy:
        via = f"http://127.0.0.1:{proxy.port}"
        store: ObjectStore = (
            make_swift(swift_env, name, retries=5, auth_url=f"{via}/auth/v1.0",
                       storage_url=f"{via}/v1/AUTH_glint") if kind == "swift"
            else make_s3(swift_env, name, retries=5, endpoint=via))
        try:
            data = os.urandom(12 * MiB)
            writer = store.writer("img-retried")
            writer.write(data[:6 * MiB])  # the first segment is on its way
            proxy.disable()  # every connection cut, new ones refused...
            threading.Timer(0.4, proxy.enable).start()  # ...for a moment
            writer.write(data[6 * MiB:])
            location = writer.commit()
            assert b"".join(store.read(location)) == data
        finally:
            proxy.enable()
            _empty_swift(store) if isinstance(store, SwiftStore) else _empty_s3(store)


def test_start_up_leaves_an_object_stores_unfinished_writes_to_the_reaper(
        store: ObjectStore, make_glint: Any, tmp_path: Any) -> None:
    from glint.stores.filesystem import FilesystemStore

    local = FilesystemStore(tmp_path / "local")
    local.writer("img-local").write(b"this node's own unfinished write")
    writer = store.writer("img-elsewhere")  # another node's write, under way
    writer.write(os.urandom(6 * MiB))
    while writer._held:  # type: ignore[attr-defined]
        time.sleep(0.05)
    stores = multi.MultiStore({"local": local, "objects": store}, default="local")
    glint = make_glint(store=stores, enabled_backends={"local": "filesystem",
                                                       "objects": store.name})
    glint.start()
    assert list((tmp_path / "local").iterdir()) == []  # this node's own: gone at start-up
    assert leftovers(store) != []  # the shared store's: swept by age only
    assert glint.reaper is not None
    assert glint.reaper.sweep_store(clock=1e12) == 0  # younger than store_tmp_max_age
    writer.abort()
    assert leftovers(store) == []


@pytest.mark.parametrize("kind", ["swift", "s3"])
def test_the_health_check_asks_the_object_store(kind: str, swift_env: dict[str, str]) -> None:
    import urllib.parse

    from glint import health
    from tests.integration.tcpproxy import TcpProxy

    port = urllib.parse.urlsplit(swift_env["GLINT_S3_ENDPOINT"]).port
    assert port is not None
    name = f"glint-test-{secrets.token_hex(4)}"
    with TcpProxy(("127.0.0.1", port)) as proxy:
        via = f"http://127.0.0.1:{proxy.port}"
        store: ObjectStore = (
            make_swift(swift_env, name, retries=0, auth_url=f"{via}/auth/v1.0",
                       storage_url=f"{via}/v1/AUTH_glint") if kind == "swift"
            else make_s3(swift_env, name, retries=0, endpoint=via))
        try:
            check = health.store_check({"objects": store})
            assert check() == "1 writable"
            proxy.disable()  # nothing is sent before a segment is full: the probe notices
            with pytest.raises(RuntimeError, match="store objects"):
                check()
        finally:
            proxy.enable()
            _empty_swift(store) if isinstance(store, SwiftStore) else _empty_s3(store)
