"""The ``export`` script end to end: task API → runner → script → a file or a loopback PUT."""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import subprocess
from typing import Any

import pytest
import sqlalchemy as sa

from glint import app, errors, gate, qemu_img
from glint.context import RequestContext
from glint.db import models
from glint.scripts import export_targets
from glint.stores.filesystem import FilesystemStore
from glint.stores.memory import MemoryStore
from tests.conftest import MakeGlint
from tests.httpserver import LocalServer, closed_port
from tests.tools import needs_qemu_img
from tests.unit.scripts.support import active_image, run_task

DATA = os.urandom(2 * 1024 * 1024 + 4321)


@pytest.fixture
def exports(tmp_path: pathlib.Path) -> pathlib.Path:
    directory = tmp_path / "exports"
    directory.mkdir()
    return directory


@pytest.fixture
def glint(make_glint: MakeGlint, exports: pathlib.Path, tmp_path: pathlib.Path) -> app.Glint:
    return make_glint(export_allowed_dirs=(exports,), work_dir=tmp_path / "work")


def _export(glint: app.Glint, ctx: RequestContext, image_id: str, export_to: str,
            **extra: Any) -> Any:
    return run_task(glint, ctx, "export", {"image_id": image_id, "export_to": export_to,
                                           **extra})


def _assert_result(result: dict[str, Any] | None, image_id: str, export_to: str,
                   disk_format: str, data: bytes) -> None:
    assert result == {"image_id": image_id, "export_to": export_to, "disk_format": disk_format,
                      "size": len(data), "checksum": hashlib.md5(data).hexdigest(),
                      "os_hash_algo": "sha512", "os_hash_value": hashlib.sha512(data).hexdigest()}


# -- files --------------------------------------------------------------------------------


def test_exports_to_a_file_under_an_allowed_directory(glint: app.Glint, ctx: RequestContext,
                                                      exports: pathlib.Path) -> None:
    image = active_image(glint, ctx, DATA)
    (exports / "sub").mkdir()
    url = f"file://{exports}/sub/out.raw"

    task = _export(glint, ctx, image.id, url)

    assert (task.status, task.message) == ("success", "")
    _assert_result(task.result, image.id, url, "raw", DATA)
    assert (exports / "sub" / "out.raw").read_bytes() == DATA
    assert os.listdir(exports / "sub") == ["out.raw"]  # no temporary file left


def test_a_percent_encoded_path_names_the_file_it_decodes_to(
        glint: app.Glint, ctx: RequestContext, exports: pathlib.Path) -> None:
    image = active_image(glint, ctx, b"spaced")
    task = _export(glint, ctx, image.id, f"file://localhost{exports}/my%20image.raw")
    assert task.status == "success", task.message
    assert (exports / "my image.raw").read_bytes() == b"spaced"


@pytest.mark.parametrize(("where", "message"), [
    ("{outside}/out.raw", "is outside the directories exports may write to"),
    ("{exports}/../outside/out.raw", "is outside the directories exports may write to"),
    ("{exports}/escape/out.raw", "is outside the directories exports may write to"),
    ("{exports}/..", "does not name a file"),
    ("{exports}/", "does not name a file"),
    ("{exports}/missing/out.raw", "directory {exports}/missing does not exist"),
    ("{exports}/taken.raw", "taken.raw already exists, and exports never overwrite"),
    ("{exports}/dangling.raw", "dangling.raw already exists, and exports never overwrite"),
])
def test_file_targets_outside_the_rules_are_refused_when_the_task_is_created(
        glint: app.Glint, ctx: RequestContext, exports: pathlib.Path, tmp_path: pathlib.Path,
        where: str, message: str) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (exports / "escape").symlink_to(outside)  # a symlink inside pointing out
    (exports / "taken.raw").write_bytes(b"keep me")
    (exports / "dangling.raw").symlink_to(tmp_path / "nowhere")
    image = active_image(glint, ctx, DATA)
    names = {"outside": outside, "exports": exports}

    with pytest.raises(errors.BadRequest) as raised:
        _export(glint, ctx, image.id, "file://" + where.format(**names))

    assert message.format(**names) in raised.value.message
    assert (exports / "taken.raw").read_bytes() == b"keep me"
    assert os.listdir(outside) == []
    assert _task_count(glint) == 0  # refused before any task existed


@pytest.mark.parametrize(("url", "message"), [
    ("file://otherhost/srv/x.raw", "names another host"),
    ("file:relative/x.raw", "is not an absolute file:///path"),
    ("file:///srv/x.raw?q=1", "has a query or fragment"),
])
def test_malformed_file_urls_are_refused(glint: app.Glint, ctx: RequestContext, url: str,
                                         message: str) -> None:
    image = active_image(glint, ctx, DATA)
    with pytest.raises(errors.BadRequest, match=message):
        _export(glint, ctx, image.id, url)


def test_file_exports_are_off_without_allowed_directories(make_glint: MakeGlint,
                                                           ctx: RequestContext,
                                                           tmp_path: pathlib.Path) -> None:
    glint = make_glint()
    image = active_image(glint, ctx, DATA)
    with pytest.raises(errors.BadRequest, match="export_allowed_dirs setting is empty"):
        _export(glint, ctx, image.id, f"file://{tmp_path}/out.raw")


def test_a_file_that_appears_while_exporting_is_not_overwritten(
        exports: pathlib.Path) -> None:
    target = export_targets.FileTarget.parse(f"file://{exports}/late.raw", [exports])
    writer = export_targets.FileWriter(target.path, target.roots)
    writer.write(b"new bytes")
    (exports / "late.raw").write_bytes(b"someone else's")

    with pytest.raises(errors.ScriptError, match="appeared while the export ran"), writer:
        writer.commit()

    assert (exports / "late.raw").read_bytes() == b"someone else's"
    assert os.listdir(exports) == ["late.raw"]


def test_a_directory_swapped_for_a_symlink_after_the_check_is_refused(
        exports: pathlib.Path, tmp_path: pathlib.Path) -> None:
    (exports / "sub").mkdir()
    target = export_targets.FileTarget.parse(f"file://{exports}/sub/out.raw", [exports])
    outside = tmp_path / "outside"
    outside.mkdir()
    (exports / "sub").rmdir()
    (exports / "sub").symlink_to(outside)

    with pytest.raises(errors.ScriptError, match="outside the directories exports may write"):
        export_targets.FileWriter(target.path, target.roots)

    assert os.listdir(outside) == []


def test_a_failed_export_leaves_no_file(glint: app.Glint, ctx: RequestContext,
                                        exports: pathlib.Path) -> None:
    image = active_image(glint, ctx, DATA)
    store = glint.store
    assert isinstance(store, MemoryStore) and image.location is not None
    store.blobs[image.location] = DATA[:-10]  # the store lost bytes: the copy must not finish

    task = _export(glint, ctx, image.id, f"file://{exports}/out.raw")

    assert task.status == "failure"
    assert "size mismatch" in task.message
    assert os.listdir(exports) == []


def test_only_active_images_visible_to_the_creator_are_exported(
        glint: app.Glint, ctx: RequestContext, other_ctx: RequestContext,
        exports: pathlib.Path) -> None:
    private = active_image(glint, ctx, DATA, visibility="private")
    queued = glint.images.create(ctx, {"name": "empty", "disk_format": "raw",
                                       "container_format": "bare"})

    hidden = _export(glint, other_ctx, private.id, f"file://{exports}/a.raw")
    empty = _export(glint, ctx, queued.id, f"file://{exports}/b.raw")

    assert (hidden.status, hidden.message) == (
        "failure", f"Cannot export: No image found with ID {private.id}")
    assert (empty.status, empty.message) == (
        "failure", f"Cannot export image {queued.id}: it is queued, and only active images "
                   "can be exported")
    assert os.listdir(exports) == []


# -- http(s) ------------------------------------------------------------------------------


def test_exports_to_a_url_that_takes_a_put(glint: app.Glint, ctx: RequestContext,
                                           http_server: LocalServer) -> None:
    image = active_image(glint, ctx, DATA)
    url = http_server.accept("/bucket/image.raw")

    task = _export(glint, ctx, image.id, url)

    assert (task.status, task.message) == ("success", "")
    _assert_result(task.result, image.id, url, "raw", DATA)
    assert http_server.uploads["/bucket/image.raw"] == DATA
    [request] = http_server.requests
    assert (request.method, request.headers["Content-Length"]) == ("PUT", str(len(DATA)))
    assert request.headers["User-Agent"] == "glint-export"


def test_a_put_answered_with_an_error_fails_the_export(glint: app.Glint, ctx: RequestContext,
                                                       http_server: LocalServer) -> None:
    image = active_image(glint, ctx, DATA)
    url = http_server.accept("/full", status=507)

    task = _export(glint, ctx, image.id, url)

    assert (task.status, task.message) == (
        "failure", f"{url} answered HTTP 507 Insufficient Storage to the export's PUT")
    assert http_server.uploads == {}


@pytest.mark.parametrize(("url", "message"), [
    ("http://localhost:1/x", r"refused: Import URL host 'localhost' \(port 1\) is not in the allowed hosts"),
    ("ftp://127.0.0.1/x", "refused: Import URL scheme 'ftp' is not allowed"),
])
def test_urls_the_import_filter_refuses_are_refused(glint: app.Glint, ctx: RequestContext,
                                                    url: str, message: str) -> None:
    image = active_image(glint, ctx, DATA)
    with pytest.raises(errors.BadRequest, match=message):
        _export(glint, ctx, image.id, url)


def test_an_unreachable_url_fails_the_export(glint: app.Glint, ctx: RequestContext) -> None:
    image = active_image(glint, ctx, DATA)
    task = _export(glint, ctx, image.id, f"http://127.0.0.1:{closed_port()}/x")
    assert task.status == "failure"
    assert task.message.startswith("Sending to http://127.0.0.1:")


# -- conversion ---------------------------------------------------------------------------


def _qemu_info(path: pathlib.Path) -> dict[str, Any]:
    out = subprocess.run(["qemu-img", "info", "--output=json", str(path)], check=True,
                         capture_output=True, text=True).stdout
    info: dict[str, Any] = json.loads(out)
    return info


@needs_qemu_img
@pytest.mark.parametrize("store_kind", ["memory", "filesystem"])
def test_converts_raw_to_qcow2_on_the_way(make_glint: MakeGlint, ctx: RequestContext,
                                          exports: pathlib.Path, tmp_path: pathlib.Path,
                                          store_kind: str) -> None:
    store = MemoryStore() if store_kind == "memory" else FilesystemStore(tmp_path / "images")
    glint = make_glint(store=store, export_allowed_dirs=(exports,), work_dir=tmp_path / "work")
    disk = DATA[:1024 * 1024] + bytes(1024 * 1024)  # a 2 MiB disk, half of it zeros
    image = active_image(glint, ctx, disk)
    url = f"file://{exports}/disk.qcow2"

    task = _export(glint, ctx, image.id, url, export_format="qcow2")

    assert (task.status, task.message) == ("success", "")
    written = (exports / "disk.qcow2").read_bytes()
    _assert_result(task.result, image.id, url, "qcow2", written)
    info = _qemu_info(exports / "disk.qcow2")
    assert (info["format"], info["virtual-size"]) == ("qcow2", len(disk))
    back = tmp_path / "back.raw"
    subprocess.run(["qemu-img", "convert", "-f", "qcow2", "-O", "raw",
                    str(exports / "disk.qcow2"), str(back)], check=True)
    assert back.read_bytes() == disk
    assert os.listdir(tmp_path / "work") == []  # the scratch directory went


@needs_qemu_img
def test_converted_data_can_go_to_a_url(glint: app.Glint, ctx: RequestContext,
                                        http_server: LocalServer,
                                        tmp_path: pathlib.Path) -> None:
    disk = DATA[:1024 * 1024]
    image = active_image(glint, ctx, disk)
    url = http_server.accept("/disk.vmdk")

    task = _export(glint, ctx, image.id, url, export_format="vmdk")

    assert task.status == "success", task.message
    received = tmp_path / "received.vmdk"
    received.write_bytes(http_server.uploads["/disk.vmdk"])
    _assert_result(task.result, image.id, url, "vmdk", received.read_bytes())
    assert _qemu_info(received)["format"] == "vmdk"


@needs_qemu_img
def test_an_unsafe_source_is_not_converted(glint: app.Glint, ctx: RequestContext,
                                           exports: pathlib.Path,
                                           tmp_path: pathlib.Path) -> None:
    secret = tmp_path / "host-secret.raw"
    secret.write_bytes(b"host secret\n" + bytes(65536))
    sneaky = tmp_path / "sneaky.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(secret), "-F", "raw",
                    str(sneaky)], check=True)
    image = active_image(glint, ctx, sneaky.read_bytes(), disk_format="qcow2")

    task = _export(glint, ctx, image.id, f"file://{exports}/out.raw", export_format="raw")

    assert task.status == "failure"
    assert task.message == ("Image data refused: the qcow2 image failed safety checks "
                            "(backing_file: Image has a backing file)")
    assert "backing_file" in task.message
    assert os.listdir(exports) == []
    assert os.listdir(tmp_path / "work") == []


@needs_qemu_img
def test_data_not_in_its_declared_format_is_not_converted(
        glint: app.Glint, ctx: RequestContext, exports: pathlib.Path) -> None:
    image = active_image(glint, ctx, DATA, disk_format="qcow2")  # random bytes, "qcow2"
    task = _export(glint, ctx, image.id, f"file://{exports}/out.raw", export_format="raw")
    assert task.status == "failure"
    assert task.message == "Image data refused: disk_format is 'qcow2' but the data is raw"
    assert os.listdir(exports) == []


def test_a_missing_qemu_img_fails_with_what_to_install(
        glint: app.Glint, ctx: RequestContext, exports: pathlib.Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(qemu_img, "COMMAND", "glint-test-no-such-qemu-img")
    image = active_image(glint, ctx, DATA)
    task = _export(glint, ctx, image.id, f"file://{exports}/out.qcow2", export_format="qcow2")
    assert (task.status, task.message) == (
        "failure", "glint-test-no-such-qemu-img is not installed (Debian package qemu-utils); "
                   "it is needed to convert image formats")
    assert os.listdir(exports) == []


@needs_qemu_img
def test_a_failing_conversion_fails_with_qemu_imgs_reason(
        glint: app.Glint, ctx: RequestContext, exports: pathlib.Path, tmp_path: pathlib.Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gate.ImageGate, "check_file",
                        lambda self, path, disk_format, what="": gate.Verdict(disk_format, None))
    image = active_image(glint, ctx, DATA, disk_format="vdi")  # not a VDI: qemu-img says so
    task = _export(glint, ctx, image.id, f"file://{exports}/out.raw", export_format="raw")
    assert task.status == "failure"
    assert task.message.startswith("qemu-img could not convert vdi to raw: qemu-img: ")
    assert os.listdir(exports) == []
    assert os.listdir(tmp_path / "work") == []


@pytest.mark.parametrize(("export_format", "message"), [
    ("floppy", "Invalid export_format 'floppy': must be one of"),
    ("ploop", "cannot convert to 'ploop': glint converts to qcow2, raw, vdi, vhd, vhdx, vmdk"),
])
def test_formats_glint_cannot_write_are_refused(glint: app.Glint, ctx: RequestContext,
                                                exports: pathlib.Path, export_format: str,
                                                message: str) -> None:
    image = active_image(glint, ctx, DATA)
    with pytest.raises(errors.BadRequest, match=message):
        _export(glint, ctx, image.id, f"file://{exports}/out", export_format=export_format)


def _task_count(glint: app.Glint) -> int:
    with glint.db.reader() as session:
        return int(session.scalar(sa.select(sa.func.count()).select_from(models.Task)) or 0)
