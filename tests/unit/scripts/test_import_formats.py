"""What an import accepts as image data: the format inspector's verdict, decompression with a
bound, and conversion with qemu-img. The malicious inputs are built here, at test time."""

from __future__ import annotations

import gzip
import hashlib
import lzma
import os
import pathlib
import subprocess
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa

from glint import app, errors, qemu_img
from glint.context import RequestContext
from glint.db import models
from glint.stores.memory import MemoryStore
from tests.conftest import MakeGlint
from tests.httpserver import LocalServer
from tests.tools import needs_qemu_img

RAW = os.urandom(1024 * 1024) + bytes(1024 * 1024)  # a 2 MiB disk, half of it zeros


def _qemu_img(*args: str) -> None:
    subprocess.run(["qemu-img", *args], check=True, capture_output=True)


@pytest.fixture
def make_qcow2(tmp_path: pathlib.Path) -> Callable[..., bytes]:
    """qcow2 bytes made by qemu-img: plain, or with ``-b backing`` / ``-o data_file=``."""
    def make(*options: str, size: str = "1M") -> bytes:
        path = tmp_path / f"made-{len(list(tmp_path.iterdir()))}.qcow2"
        _qemu_img("create", "-q", "-f", "qcow2", *options, str(path), size)
        return path.read_bytes()
    return make


@pytest.fixture
def qcow2_of_raw(tmp_path: pathlib.Path) -> bytes:
    """RAW converted to qcow2 by qemu-img (so a conversion back must give RAW exactly)."""
    (tmp_path / "source.raw").write_bytes(RAW)
    _qemu_img("convert", "-q", "-f", "raw", "-O", "qcow2", str(tmp_path / "source.raw"),
              str(tmp_path / "source.qcow2"))
    return (tmp_path / "source.qcow2").read_bytes()


def _vmdk_descriptor(create_type: str, extent: str) -> bytes:
    """A VMDK text descriptor, the kind whose extents name other files (CVE-2022-47951)."""
    return (f'# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\n'
            f'createType="{create_type}"\n\n# Extent description\n{extent}\n\n'
            f'ddb.virtualHWVersion = "4"\n').encode()


def _run(glint: app.Glint, ctx: RequestContext, url: str, source_format: str,
         **extra: Any) -> models.Task:
    task_input = {"import_from": url, "import_from_format": source_format,
                  "image_properties": {"name": "imported"}, **extra}
    task = glint.tasks.create(ctx, "import", task_input)
    return glint.tasks.get(ctx, task.id)


def _assert_refused(glint: app.Glint, task: models.Task, message: str) -> None:
    assert task.status == "failure"
    assert message in task.message, task.message
    with glint.db.reader() as session:
        images = list(session.scalars(sa.select(models.Image)))
    assert [i.id for i in images if not i.deleted] == []
    assert isinstance(glint.store, MemoryStore) and glint.store.blobs == {}
    work = glint.settings.effective_work_dir
    assert not work.exists() or list(work.iterdir()) == []


def _assert_stored(glint: app.Glint, ctx: RequestContext, task: models.Task, data: bytes,
                   disk_format: str, virtual_size: int | None) -> models.Image:
    assert (task.status, task.message) == ("success", "")
    assert task.result is not None
    image = glint.images.get(ctx, task.result["image_id"])
    assert (image.disk_format, image.size, image.virtual_size) == (
        disk_format, len(data), virtual_size)
    assert image.checksum == hashlib.md5(data).hexdigest()
    assert image.os_hash_value == hashlib.sha512(data).hexdigest()
    assert image.location is not None
    assert b"".join(glint.store.read(image.location)) == data
    work = glint.settings.effective_work_dir
    assert not work.exists() or list(work.iterdir()) == []
    return image


# -- the format inspector ---------------------------------------------------------------------


def test_raw_data_gets_its_virtual_size(make_glint: MakeGlint, ctx: RequestContext,
                                        http_server: LocalServer) -> None:
    glint = make_glint()
    task = _run(glint, ctx, http_server.serve("/disk.raw", RAW), "raw")
    _assert_stored(glint, ctx, task, RAW, "raw", len(RAW))


@needs_qemu_img
def test_a_qcow2_made_by_qemu_img_is_imported(make_glint: MakeGlint, ctx: RequestContext,
                                               http_server: LocalServer,
                                               make_qcow2: Callable[..., bytes]) -> None:
    glint = make_glint()
    data = make_qcow2(size="10M")
    task = _run(glint, ctx, http_server.serve("/disk.qcow2", data, chunked=True), "qcow2")
    _assert_stored(glint, ctx, task, data, "qcow2", 10 * 1024 * 1024)


@needs_qemu_img
@pytest.mark.parametrize("options, message", [
    (("-b", "/etc/hostname", "-F", "raw"), "backing_file: Image has a backing file"),
    (("-o", "data_file=/tmp/glint-test-data-file.raw"), "data_file: Image has data_file set"),
])
def test_qcow2_pointing_at_host_files_is_refused(
        make_glint: MakeGlint, ctx: RequestContext, http_server: LocalServer,
        make_qcow2: Callable[..., bytes], options: tuple[str, ...], message: str) -> None:
    glint = make_glint()
    try:
        data = make_qcow2(*options)
    finally:
        pathlib.Path("/tmp/glint-test-data-file.raw").unlink(missing_ok=True)
    task = _run(glint, ctx, http_server.serve("/evil.qcow2", data), "qcow2")
    _assert_refused(glint, task, "Image data refused: the qcow2 image failed safety checks")
    assert message in task.message


@pytest.mark.parametrize("create_type, extent, message", [
    ("monolithicFlat", 'RW 2048 FLAT "/etc/passwd" 0', "Unsupported subformat"),
    # A sparse descriptor without its binary header: which check fires first depends on how the
    # bytes arrive in chunks; both refuse it before any extent is read.
    ("monolithicSparse", 'RW 2048 SPARSE "/etc/shadow"',
     ("Invalid extent filenames found", "Unsupported subformat")),
    ("vmfs", 'RW 2048 VMFS "disk-flat.vmdk"', "Unsupported subformat"),
])
def test_vmdk_with_external_extents_is_refused(
        make_glint: MakeGlint, ctx: RequestContext, http_server: LocalServer,
        create_type: str, extent: str, message: str | tuple[str, ...]) -> None:
    glint = make_glint()
    url = http_server.serve("/evil.vmdk", _vmdk_descriptor(create_type, extent))
    task = _run(glint, ctx, url, "vmdk")
    _assert_refused(glint, task, "the vmdk image failed safety checks")
    expected = (message,) if isinstance(message, str) else message
    assert any(m in task.message for m in expected), task.message


@needs_qemu_img
def test_vmdk_create_types_are_limited_by_the_setting(
        make_glint: MakeGlint, ctx: RequestContext, http_server: LocalServer,
        tmp_path: pathlib.Path) -> None:
    _qemu_img("create", "-q", "-f", "vmdk", "-o", "subformat=monolithicSparse",
              str(tmp_path / "d.vmdk"), "1M")
    data = (tmp_path / "d.vmdk").read_bytes()
    glint = make_glint(vmdk_allowed_types=("streamOptimized",))
    task = _run(glint, ctx, http_server.serve("/d.vmdk", data), "vmdk")
    _assert_refused(glint, task, "VMDK create-type 'monolithicsparse' is not in "
                                 "vmdk_allowed_types (streamOptimized)")


@needs_qemu_img
def test_data_in_another_format_than_declared_is_refused(
        make_glint: MakeGlint, ctx: RequestContext, http_server: LocalServer,
        make_qcow2: Callable[..., bytes]) -> None:
    glint = make_glint()
    qcow2 = http_server.serve("/disk.qcow2", make_qcow2())
    _assert_refused(glint, _run(glint, ctx, qcow2, "raw"),
                    "Image data refused: import_from_format is 'raw' but the data is qcow2")
    _assert_refused(glint, _run(glint, ctx, qcow2, "vmdk"),
                    "import_from_format is 'vmdk' but the data is qcow2")
    raw = http_server.serve("/disk.raw", RAW)
    _assert_refused(glint, _run(glint, ctx, raw, "qcow2"),
                    "import_from_format is 'qcow2' but the data is raw")


def test_qed_is_always_refused(make_glint: MakeGlint, ctx: RequestContext,
                               http_server: LocalServer) -> None:
    glint = make_glint()
    header = b"QED\x00" + bytes(508)
    task = _run(glint, ctx, http_server.serve("/disk.qed", header + RAW), "raw")
    _assert_refused(glint, task, "import_from_format is 'raw' but the data is qed")


# -- decompression ---------------------------------------------------------------------------


@pytest.mark.parametrize("compress", [gzip.compress, lzma.compress], ids=["gzip", "xz"])
def test_compressed_data_is_decompressed_when_asked(
        make_glint: MakeGlint, ctx: RequestContext, http_server: LocalServer,
        compress: Callable[[bytes], bytes]) -> None:
    glint = make_glint()
    url = http_server.serve("/disk.raw.z", compress(RAW))
    task = _run(glint, ctx, url, "raw", decompress=True)
    _assert_stored(glint, ctx, task, RAW, "raw", len(RAW))


def test_zstd_data_is_decompressed_when_asked(make_glint: MakeGlint, ctx: RequestContext,
                                              http_server: LocalServer) -> None:
    zstandard = pytest.importorskip("zstandard")
    glint = make_glint()
    url = http_server.serve("/disk.raw.zst", zstandard.ZstdCompressor().compress(RAW))
    task = _run(glint, ctx, url, "raw", decompress=True)
    _assert_stored(glint, ctx, task, RAW, "raw", len(RAW))


def test_the_setting_turns_decompression_on(make_glint: MakeGlint, ctx: RequestContext,
                                            http_server: LocalServer) -> None:
    glint = make_glint(import_decompress=True)
    task = _run(glint, ctx, http_server.serve("/d.gz", gzip.compress(RAW), chunked=True), "raw")
    _assert_stored(glint, ctx, task, RAW, "raw", len(RAW))


def test_uncompressed_data_passes_through_decompression(
        make_glint: MakeGlint, ctx: RequestContext, http_server: LocalServer) -> None:
    glint = make_glint()
    task = _run(glint, ctx, http_server.serve("/disk.raw", RAW), "raw", decompress=True)
    _assert_stored(glint, ctx, task, RAW, "raw", len(RAW))


def test_a_gzip_bomb_fails_the_task(make_glint: MakeGlint, ctx: RequestContext,
                                    http_server: LocalServer) -> None:
    bomb = gzip.compress(bytes(256 * 1024 * 1024), compresslevel=9)  # 256 MiB in about 250 KiB
    assert len(bomb) < 300 * 1024
    glint = make_glint(import_decompressed_size_cap=16 * 1024 * 1024)
    task = _run(glint, ctx, http_server.serve("/bomb.gz", bomb), "raw", decompress=True)
    _assert_refused(glint, task, "Decompressed image data exceeds 16777216 bytes")
    assert "decompression bomb" in task.message


def test_the_image_size_cap_bounds_decompression_by_default(
        make_glint: MakeGlint, ctx: RequestContext, http_server: LocalServer) -> None:
    glint = make_glint(image_size_cap=len(RAW) - 1)
    task = _run(glint, ctx, http_server.serve("/d.gz", gzip.compress(RAW)), "raw",
                decompress=True)
    _assert_refused(glint, task, f"exceeds {len(RAW) - 1} bytes")


def test_truncated_compressed_data_fails_the_task(make_glint: MakeGlint, ctx: RequestContext,
                                                  http_server: LocalServer) -> None:
    glint = make_glint()
    url = http_server.serve("/d.gz", gzip.compress(RAW)[:-100])
    task = _run(glint, ctx, url, "raw", decompress=True)
    _assert_refused(glint, task, "The import data is not valid gzip data")


@needs_qemu_img
def test_a_compressed_unsafe_image_is_refused(make_glint: MakeGlint, ctx: RequestContext,
                                              http_server: LocalServer,
                                              make_qcow2: Callable[..., bytes]) -> None:
    glint = make_glint()
    data = gzip.compress(make_qcow2("-b", "/etc/hostname", "-F", "raw"))
    task = _run(glint, ctx, http_server.serve("/evil.qcow2.gz", data), "qcow2",
                decompress=True)
    _assert_refused(glint, task, "backing_file")


# -- conversion ------------------------------------------------------------------------------


@needs_qemu_img
def test_qcow2_is_converted_to_raw(make_glint: MakeGlint, ctx: RequestContext,
                                   http_server: LocalServer, qcow2_of_raw: bytes) -> None:
    glint = make_glint()
    url = http_server.serve("/disk.qcow2", qcow2_of_raw)
    task = _run(glint, ctx, url, "qcow2", conversion_format="raw")
    _assert_stored(glint, ctx, task, RAW, "raw", len(RAW))  # checksums of the converted bytes


@needs_qemu_img
def test_the_setting_converts_and_compressed_input_converts_too(
        make_glint: MakeGlint, ctx: RequestContext, http_server: LocalServer,
        qcow2_of_raw: bytes) -> None:
    glint = make_glint(import_conversion_format="raw")
    url = http_server.serve("/disk.qcow2.xz", lzma.compress(qcow2_of_raw))
    task = _run(glint, ctx, url, "qcow2", decompress=True)
    _assert_stored(glint, ctx, task, RAW, "raw", len(RAW))


@needs_qemu_img
def test_raw_is_converted_to_qcow2(make_glint: MakeGlint, ctx: RequestContext,
                                   http_server: LocalServer) -> None:
    glint = make_glint()
    task = _run(glint, ctx, http_server.serve("/disk.raw", RAW), "raw",
                conversion_format="qcow2",
                image_properties={"name": "imported", "disk_format": "qcow2"})
    assert task.status == "success", task.message
    assert task.result is not None
    image = glint.images.get(ctx, task.result["image_id"])
    assert (image.disk_format, image.virtual_size) == ("qcow2", len(RAW))
    assert image.location is not None
    stored = b"".join(glint.store.read(image.location))
    assert stored.startswith(b"QFI\xfb") and image.size == len(stored)
    assert image.checksum == hashlib.md5(stored).hexdigest()


@needs_qemu_img
def test_no_conversion_when_the_data_is_already_in_the_target_format(
        make_glint: MakeGlint, ctx: RequestContext, http_server: LocalServer,
        qcow2_of_raw: bytes) -> None:
    glint = make_glint(import_conversion_format="qcow2")
    task = _run(glint, ctx, http_server.serve("/d.qcow2", qcow2_of_raw), "qcow2")
    _assert_stored(glint, ctx, task, qcow2_of_raw, "qcow2", len(RAW))


@needs_qemu_img
@pytest.mark.parametrize("options", [("-b", "/etc/hostname", "-F", "raw"),
                                     ("-o", "data_file=/tmp/glint-test-data-file-2.raw")])
def test_unsafe_qcow2_never_reaches_qemu_img(
        make_glint: MakeGlint, ctx: RequestContext, http_server: LocalServer,
        make_qcow2: Callable[..., bytes], monkeypatch: pytest.MonkeyPatch,
        options: tuple[str, ...]) -> None:
    try:
        data = make_qcow2(*options)
    finally:
        pathlib.Path("/tmp/glint-test-data-file-2.raw").unlink(missing_ok=True)

    def never(*args: Any, **kwargs: Any) -> Any:
        pytest.fail("qemu-img ran on an unsafe image")

    monkeypatch.setattr(qemu_img, "info", never)
    monkeypatch.setattr(qemu_img, "convert", never)
    glint = make_glint()
    task = _run(glint, ctx, http_server.serve("/evil.qcow2", data), "qcow2",
                conversion_format="raw")
    _assert_refused(glint, task, "failed safety checks")


@needs_qemu_img
def test_qemu_img_info_runs_under_limits(tmp_path: pathlib.Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    # The limits are applied in the child (RLIMIT_CPU 2 s, RLIMIT_AS 1 GiB): prove they bite by
    # asking for less memory than qemu-img needs to start.
    (tmp_path / "d.raw").write_bytes(RAW)
    assert qemu_img.info(tmp_path / "d.raw", "raw")["virtual-size"] == len(RAW)
    monkeypatch.setattr(qemu_img, "INFO_ADDRESS_SPACE", 16 * 1024 * 1024)
    with pytest.raises(errors.ScriptError, match="qemu-img info could not read the image"):
        qemu_img.info(tmp_path / "d.raw", "raw")


@needs_qemu_img
def test_qemu_img_info_refuses_what_the_inspector_would(
        make_qcow2: Callable[..., bytes], tmp_path: pathlib.Path) -> None:
    path = tmp_path / "backed.qcow2"
    path.write_bytes(make_qcow2("-b", "/etc/hostname", "-F", "raw"))
    with pytest.raises(errors.ScriptError, match="it has a backing file"):
        qemu_img.info(path, "qcow2")
    with pytest.raises(errors.ScriptError, match=r"reads it as raw, not vmdk|could not read"):
        qemu_img.info(tmp_path / "backed.qcow2", "vmdk")


def test_conversion_input_is_checked_at_create(make_glint: MakeGlint,
                                               ctx: RequestContext) -> None:
    glint = make_glint()
    base = {"import_from": "http://127.0.0.1:9/x", "import_from_format": "qcow2"}
    with pytest.raises(errors.BadRequest, match="is not one of"):
        glint.tasks.create(ctx, "import", {**base, "conversion_format": "floppy",
                                           "image_properties": {}})
    with pytest.raises(errors.BadRequest, match="the data is converted to 'raw'"):
        glint.tasks.create(ctx, "import", {**base, "conversion_format": "raw",
                                           "image_properties": {"disk_format": "qcow2"}})
