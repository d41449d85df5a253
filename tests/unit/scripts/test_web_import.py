"""The ``import`` script end to end: task API → runner → script → local HTTP server → store."""

from __future__ import annotations

import hashlib
import os
import pathlib
from typing import Any

import pytest
import sqlalchemy as sa

from glint import app, errors
from glint.context import RequestContext
from glint.db import models
from glint.notifiers import base as notifiers
from glint.notifiers.memory import MemoryNotifier
from glint.scripts import web_import
from glint.stores import filesystem
from glint.stores.filesystem import FilesystemStore
from glint.stores.memory import MemoryStore
from glint.tasks import progress
from tests.conftest import MakeGlint
from tests.httpserver import LocalServer, closed_port
from tests.stores import FullStore

DATA = os.urandom(3 * 1024 * 1024 + 12345)  # several read chunks, not a round number


def _create(glint: app.Glint, ctx: RequestContext, url: str,
            **image_properties: Any) -> models.Task:
    task_input = {"import_from": url, "import_from_format": "raw",
                  "image_properties": {"name": "imported", **image_properties}}
    task = glint.tasks.create(ctx, "import", task_input)
    return glint.tasks.get(ctx, task.id)  # the inline executor ran it before create returned


def _event_types(glint: app.Glint) -> list[str]:
    notifier = glint.notifier
    assert isinstance(notifier, notifiers.Filtered)
    assert isinstance(notifier.inner, MemoryNotifier)
    return notifier.inner.types()


def _images(glint: app.Glint) -> list[models.Image]:
    with glint.db.reader() as session:
        return list(session.scalars(sa.select(models.Image)))


def _assert_failed_cleanly(glint: app.Glint, task: models.Task, message: str) -> None:
    assert task.status == "failure"
    assert message in task.message
    assert task.result is None
    assert [i.id for i in _images(glint) if not i.deleted] == []
    if task.image_id is not None:  # the image was created, then discarded with its bytes
        assert [(i.id, i.status, i.location) for i in _images(glint)] == [
            (task.image_id, "deleted", None)]
    store = glint.store
    if isinstance(store, MemoryStore):
        assert store.blobs == {}
    else:
        assert isinstance(store, FilesystemStore)
        assert list(store.path.iterdir()) == []  # not even a temporary file


def _assert_imported(glint: app.Glint, ctx: RequestContext, task: models.Task,
                     data: bytes) -> models.Image:
    assert (task.status, task.message) == ("success", "")
    assert task.result is not None
    image_id = task.result["image_id"]
    assert task.image_id == image_id
    image = glint.images.get(ctx, image_id)
    assert (image.status, image.disk_format, image.container_format, image.name) == (
        "active", "raw", "bare", "imported")
    assert image.size == len(data)
    assert image.checksum == hashlib.md5(data).hexdigest()
    assert image.os_hash_algo == "sha512"
    assert image.os_hash_value == hashlib.sha512(data).hexdigest()
    assert image.location is not None
    assert b"".join(glint.store.read(image.location)) == data
    assert list(glint.store.locations()) == [image.location]
    return image


# -- success ----------------------------------------------------------------------------


def test_import_creates_an_active_image_with_the_served_bytes(
        make_glint: MakeGlint, ctx: RequestContext, http_server: LocalServer) -> None:
    glint = make_glint()
    task = _create(glint, ctx, http_server.serve("/cirros.qcow2", DATA), min_disk=1,
                   os_distro="cirros")
    image = _assert_imported(glint, ctx, task, DATA)
    assert image.owner == ctx.project_id and image.min_disk == 1
    assert {p.name: p.value for p in image.properties} == {"os_distro": "cirros"}
    events = _event_types(glint)
    for expected in ("task.create", "task.processing", "image.create", "image.activate",
                     "task.success"):
        assert expected in events
    assert events.index("task.processing") < events.index("image.create") \
        < events.index("image.activate") < events.index("task.success")
    assert "image.delete" not in events
    (request,) = http_server.requests
    assert request.headers["Accept-Encoding"] == "identity"


def test_import_without_content_length(make_glint: MakeGlint, ctx: RequestContext,
                                       http_server: LocalServer) -> None:
    glint = make_glint()
    task = _create(glint, ctx, http_server.serve("/chunked", DATA, chunked=True))
    _assert_imported(glint, ctx, task, DATA)


def test_import_of_empty_data(make_glint: MakeGlint, ctx: RequestContext,
                              http_server: LocalServer) -> None:
    glint = make_glint()
    _assert_imported(glint, ctx, _create(glint, ctx, http_server.serve("/empty", b"")), b"")


def test_import_follows_redirects_that_pass_the_filter(
        make_glint: MakeGlint, ctx: RequestContext, http_server: LocalServer) -> None:
    glint = make_glint()
    http_server.serve("/final", DATA)
    http_server.redirect("/middle", http_server.url("/final"), status=307)
    url = http_server.redirect("/start", "/middle", status=301)  # relative Location
    _assert_imported(glint, ctx, _create(glint, ctx, url), DATA)
    assert [r.path for r in http_server.requests] == ["/start", "/middle", "/final"]


def test_import_honours_a_matching_disk_format_and_a_container_format(
        make_glint: MakeGlint, ctx: RequestContext, http_server: LocalServer) -> None:
    glint = make_glint()
    task = _create(glint, ctx, http_server.serve("/i", DATA), disk_format="raw",
                   container_format="ovf")
    assert task.status == "success"
    assert task.result is not None
    image = glint.images.get(ctx, task.result["image_id"])
    assert (image.disk_format, image.container_format) == ("raw", "ovf")


def test_import_uses_the_configured_hashing_algorithm(
        make_glint: MakeGlint, ctx: RequestContext, http_server: LocalServer) -> None:
    glint = make_glint(hashing_algorithm="sha256")
    task = _create(glint, ctx, http_server.serve("/i", DATA))
    assert task.result is not None
    image = glint.images.get(ctx, task.result["image_id"])
    assert (image.os_hash_algo, image.os_hash_value) == (
        "sha256", hashlib.sha256(DATA).hexdigest())


def test_body_longer_than_content_length_imports_the_announced_bytes(
        make_glint: MakeGlint, ctx: RequestContext, http_server: LocalServer) -> None:
    # HTTP/1.1 ends the body at Content-Length; what follows is not part of the response.
    glint = make_glint()
    task = _create(glint, ctx, http_server.serve("/long", DATA, content_length=1000))
    _assert_imported(glint, ctx, task, DATA[:1000])


def test_progress_is_reported_in_bytes_of_the_announced_total(
        make_glint: MakeGlint, ctx: RequestContext, http_server: LocalServer,
        monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[int, int | None]] = []

    def record(self: object, done: int, total: int | None = None,
               message: str | None = None) -> None:
        calls.append((done, total))

    monkeypatch.setattr(progress.Reporter, "__call__", record)
    glint = make_glint()
    assert _create(glint, ctx, http_server.serve("/i", DATA)).status == "success"
    assert len(calls) > 1
    assert calls[-1] == (len(DATA), len(DATA))
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)


# -- refused when the task is created ------------------------------------------------------


@pytest.mark.parametrize("task_input, message", [
    ({"import_from": "file:///etc/passwd", "import_from_format": "raw",
      "image_properties": {}}, "scheme 'file' is not allowed"),
    ({"import_from": "http://127.0.0.2:9/x", "import_from_format": "raw",
      "image_properties": {}}, "not in the allowed hosts"),
    ({"import_from": "http://user:pw@127.0.0.1:9/x", "import_from_format": "raw",
      "image_properties": {}}, "credentials"),
    ({"import_from_format": "raw", "image_properties": {}}, "'import_from' is a required"),
    ({"import_from": "http://127.0.0.1:9/x", "image_properties": {}},
     "'import_from_format' is a required"),
    ({"import_from": "http://127.0.0.1:9/x", "import_from_format": "raw"},
     "'image_properties' is a required"),
    ({"import_from": "http://127.0.0.1:9/x", "import_from_format": "raw",
      "image_properties": "name=x"}, "is not of type 'object'"),
    ({"import_from": "http://127.0.0.1:9/x", "import_from_format": "floppy",
      "image_properties": {}}, "Invalid import_from_format 'floppy'"),
    ({"import_from": "http://127.0.0.1:9/x", "import_from_format": "qcow2",
      "image_properties": {"disk_format": "vhd"}}, "does not convert"),
])
def test_bad_input_is_refused_at_create_time(make_glint: MakeGlint, ctx: RequestContext,
                                              task_input: dict[str, Any], message: str) -> None:
    glint = make_glint()
    with pytest.raises(errors.BadRequest) as caught:
        glint.tasks.create(ctx, "import", task_input)
    assert message in caught.value.message
    with glint.db.reader() as session:
        assert list(session.scalars(sa.select(models.Task))) == []
    assert _images(glint) == []
    assert _event_types(glint) == []


# -- failures while running ------------------------------------------------------------------


@pytest.mark.parametrize("status", [404, 500])
def test_error_status_fails_the_task(make_glint: MakeGlint, ctx: RequestContext,
                                     http_server: LocalServer, status: int) -> None:
    glint = make_glint()
    url = http_server.status("/missing", status)
    task = _create(glint, ctx, url)
    _assert_failed_cleanly(glint, task, f"{url} answered HTTP {status}")
    assert task.image_id is not None
    events = _event_types(glint)
    assert "image.delete" in events and "task.failure" in events
    assert "image.activate" not in events


def test_connection_refused_names_the_host(make_glint: MakeGlint, ctx: RequestContext) -> None:
    glint = make_glint()
    port = closed_port()
    task = _create(glint, ctx, f"http://127.0.0.1:{port}/image")
    _assert_failed_cleanly(glint, task, f"Could not connect to 127.0.0.1:{port}")


def test_size_cap_with_content_length_fails_before_reading(
        make_glint: MakeGlint, ctx: RequestContext, http_server: LocalServer) -> None:
    glint = make_glint(image_size_cap=1000)
    task = _create(glint, ctx, http_server.serve("/big", DATA))
    _assert_failed_cleanly(glint, task, f"Image data of {len(DATA)} bytes exceeds the size "
                                        "cap of 1000 bytes")


def test_size_cap_without_content_length_fails_once_crossed(
        make_glint: MakeGlint, ctx: RequestContext, http_server: LocalServer) -> None:
    glint = make_glint(image_size_cap=1000)
    task = _create(glint, ctx, http_server.serve("/big", DATA, chunked=True))
    _assert_failed_cleanly(glint, task, "Image data exceeds the size cap of 1000 bytes")


def test_redirect_to_a_disallowed_host_is_not_followed(
        make_glint: MakeGlint, ctx: RequestContext, http_server: LocalServer) -> None:
    glint = make_glint()
    target = http_server.url("/image", host="127.0.0.2")  # loopback, but not an allowed host
    http_server.serve("/image", DATA)
    task = _create(glint, ctx, http_server.redirect("/start", target))
    _assert_failed_cleanly(glint, task, f"Redirect to {target} refused")
    assert "not in the allowed hosts" in task.message
    assert [r.path for r in http_server.requests] == ["/start"]


def test_redirect_to_a_disallowed_scheme_is_not_followed(
        make_glint: MakeGlint, ctx: RequestContext, http_server: LocalServer) -> None:
    glint = make_glint()
    task = _create(glint, ctx, http_server.redirect("/start", "file:///etc/passwd"))
    _assert_failed_cleanly(glint, task, "Redirect to file://")
    assert "scheme 'file' is not allowed" in task.message


def test_too_many_redirects(make_glint: MakeGlint, ctx: RequestContext,
                            http_server: LocalServer) -> None:
    glint = make_glint(import_max_redirects=2)
    http_server.serve("/3", DATA)
    http_server.redirect("/2", "/3")
    http_server.redirect("/1", "/2")
    task = _create(glint, ctx, http_server.redirect("/0", "/1"))
    _assert_failed_cleanly(glint, task, "Too many redirects (more than 2)")
    assert [r.path for r in http_server.requests] == ["/0", "/1", "/2"]


def test_redirect_loop_ends(make_glint: MakeGlint, ctx: RequestContext,
                            http_server: LocalServer) -> None:
    glint = make_glint()
    http_server.redirect("/b", "/a")
    task = _create(glint, ctx, http_server.redirect("/a", "/b"))
    _assert_failed_cleanly(glint, task, "Too many redirects")


def test_body_shorter_than_content_length_fails(
        make_glint: MakeGlint, ctx: RequestContext, http_server: LocalServer) -> None:
    glint = make_glint()
    task = _create(glint, ctx, http_server.serve("/short", DATA, content_length=len(DATA) + 10))
    _assert_failed_cleanly(glint, task, "from 127.0.0.1")
    assert "complete message body" in task.message


def test_stalled_body_times_out(make_glint: MakeGlint, ctx: RequestContext,
                                http_server: LocalServer) -> None:
    glint = make_glint(import_timeout=0.2)
    task = _create(glint, ctx, http_server.serve("/slow", DATA, delay=1.0))
    _assert_failed_cleanly(glint, task, "Timed out fetching")
    assert "no answer for 0.2 seconds" in task.message


def test_stopping_glint_cancels_the_import(make_glint: MakeGlint, ctx: RequestContext,
                                           http_server: LocalServer) -> None:
    glint = make_glint()
    glint.runner.stopping.set()
    task = _create(glint, ctx, http_server.serve("/i", DATA))
    _assert_failed_cleanly(glint, task, "cancelled")


def test_invalid_image_properties_fail_without_an_image(
        make_glint: MakeGlint, ctx: RequestContext, http_server: LocalServer) -> None:
    glint = make_glint()
    task = _create(glint, ctx, http_server.serve("/i", DATA), status="active")
    _assert_failed_cleanly(glint, task, "Could not create the image: Attribute 'status' is "
                                        "read-only")
    assert task.image_id is None and _images(glint) == []
    assert http_server.requests == []


def test_an_existing_image_id_is_left_alone(make_glint: MakeGlint, ctx: RequestContext,
                                            http_server: LocalServer) -> None:
    glint = make_glint()
    existing = glint.images.create(ctx, {"name": "mine", "disk_format": "raw",
                                         "container_format": "bare"})
    task = _create(glint, ctx, http_server.serve("/i", DATA), id=existing.id)
    assert task.status == "failure" and "already exists" in task.message
    assert glint.images.get(ctx, existing.id).status == "queued"


def test_a_failed_store_write_fails_the_task(make_glint: MakeGlint, ctx: RequestContext,
                                             http_server: LocalServer) -> None:
    glint = make_glint(store=FullStore())
    task = _create(glint, ctx, http_server.serve("/i", DATA))
    _assert_failed_cleanly(glint, task, "Image storage media is full: No space left on device")


# -- the filesystem store ------------------------------------------------------------------


def test_import_into_the_filesystem_store(make_glint: MakeGlint, ctx: RequestContext,
                                          http_server: LocalServer, tmp_path: pathlib.Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(filesystem, "FLUSH_EVERY", 1024 * 1024)  # flush during the copy too
    store = FilesystemStore(tmp_path / "images")
    glint = make_glint(store=store)
    task = _create(glint, ctx, http_server.serve("/i", DATA, chunked=True))
    image = _assert_imported(glint, ctx, task, DATA)
    assert [p.name for p in store.path.iterdir()] == [image.location]


@pytest.mark.parametrize("route", ["short", "cap", "missing"])
def test_failed_import_leaves_no_file_in_the_filesystem_store(
        make_glint: MakeGlint, ctx: RequestContext, http_server: LocalServer,
        tmp_path: pathlib.Path, route: str) -> None:
    store = FilesystemStore(tmp_path / "images")
    glint = make_glint(store=store, image_size_cap=len(DATA) - 1)
    urls = {"short": http_server.serve("/short", DATA[:-1], content_length=len(DATA) - 1 + 10),
            "cap": http_server.serve("/cap", DATA, chunked=True),
            "missing": http_server.status("/missing", 404)}
    task = _create(glint, ctx, urls[route])
    assert task.image_id is not None
    _assert_failed_cleanly(glint, task, "")


def test_the_transport_reads_sockets_in_big_pieces() -> None:
    # Guards the swap of httpcore's network backend (a private attribute of httpx's transport):
    # if an httpx upgrade moves it, imports still work but lose a third of their speed.
    transport = web_import._transport()
    assert isinstance(transport._pool._network_backend, web_import._Backend)
