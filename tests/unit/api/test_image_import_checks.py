"""``POST /v2/images/{id}/import`` checks the data as Glance's conversion plugin does: the format
inspector's verdict for web-download and glance-direct, decompression and conversion by
setting. A refused import reverts the image to queued, with no bytes anywhere."""

from __future__ import annotations

import gzip
import hashlib
import os
import pathlib
import subprocess
from collections.abc import Callable

from glint import app
from glint.api.app import create_app
from glint.images import states
from glint.imports import methods as imports
from glint.scripts.registry import Registry
from tests.httpserver import LocalServer
from tests.tools import needs_qemu_img
from tests.unit.api import import_support
from tests.unit.api.data_support import OCTET, staged_files, stored
from tests.unit.api.import_support import GLANCE_DIRECT, SCRIPTS, image_tasks, import_, web_download
from tests.unit.api.support import CTX_A, PROJECT_A, TestClient, add_image

RAW = os.urandom(512 * 1024) + bytes(512 * 1024)


# The shared fixtures, which the tests below take by name.
glint = import_support.glint
http_server = import_support.http_server


def _qcow2(tmp_path: pathlib.Path, *options: str, source: bytes | None = None) -> bytes:
    path = tmp_path / "made.qcow2"
    if source is None:
        command = ["qemu-img", "create", "-q", "-f", "qcow2", *options, str(path), "1M"]
    else:
        (tmp_path / "made.raw").write_bytes(source)
        command = ["qemu-img", "convert", "-q", "-f", "raw", "-O", "qcow2",
                   str(tmp_path / "made.raw"), str(path)]
    subprocess.run(command, check=True, capture_output=True)
    return path.read_bytes()


def _assert_reverted(glint: app.Glint, client: TestClient, image_id: str, message: str) -> None:
    [task] = image_tasks(client, image_id)
    assert task["status"] == "failure"
    assert message in task["message"], task["message"]
    image = glint.images.get(CTX_A, image_id)
    assert (image.status, image.size, image.virtual_size, image.location) == (
        states.QUEUED, None, None, None)
    assert imports.LOCK not in image.extra_properties
    assert stored(glint) == {}
    assert staged_files(glint) == []


@needs_qemu_img
def test_web_download_of_a_qcow2_with_a_backing_file_is_refused(
        client: TestClient, glint: app.Glint, http_server: LocalServer,
        tmp_path: pathlib.Path) -> None:
    image = add_image(glint, CTX_A, disk_format="qcow2")
    url = http_server.serve("/evil.qcow2", _qcow2(tmp_path, "-b", "/etc/hostname", "-F", "raw"))
    assert import_(client, image.id, web_download(url)).status_code == 202
    _assert_reverted(glint, client, image.id, "backing_file: Image has a backing file")


@needs_qemu_img
def test_glance_direct_of_a_qcow2_with_a_data_file_is_refused(
        client: TestClient, glint: app.Glint, tmp_path: pathlib.Path) -> None:
    image = add_image(glint, CTX_A, disk_format="qcow2")
    data = _qcow2(tmp_path, "-o", f"data_file={tmp_path / 'external.raw'}")
    client.put(f"/v2/images/{image.id}/stage", content=data, headers={**PROJECT_A, **OCTET})
    assert import_(client, image.id, GLANCE_DIRECT).status_code == 202
    _assert_reverted(glint, client, image.id, "data_file: Image has data_file set")


def test_data_that_is_not_the_images_disk_format_is_refused(
        client: TestClient, glint: app.Glint, http_server: LocalServer) -> None:
    image = add_image(glint, CTX_A, disk_format="qcow2")
    assert import_(client, image.id,
                   web_download(http_server.serve("/d", RAW))).status_code == 202
    _assert_reverted(glint, client, image.id,
                     "Image data refused: the image's disk_format is 'qcow2' but the data is raw")


def test_glance_direct_records_the_virtual_size(client: TestClient, glint: app.Glint) -> None:
    image = add_image(glint, CTX_A)
    client.put(f"/v2/images/{image.id}/stage", content=RAW, headers={**PROJECT_A, **OCTET})
    assert import_(client, image.id, GLANCE_DIRECT).status_code == 202
    got = glint.images.get(CTX_A, image.id)
    assert (got.status, got.size, got.virtual_size) == (states.ACTIVE, len(RAW), len(RAW))


@needs_qemu_img
def test_the_conversion_setting_converts_on_import(
        make_glint: Callable[..., app.Glint], http_server: LocalServer,
        tmp_path: pathlib.Path) -> None:
    glint = make_glint(registry=Registry.of(SCRIPTS), import_conversion_format="raw",
                       import_decompress=True)
    image = add_image(glint, CTX_A, disk_format="qcow2")
    url = http_server.serve("/d.qcow2.gz", gzip.compress(_qcow2(tmp_path, source=RAW)))
    with TestClient(create_app(glint)) as client:
        assert import_(client, image.id, web_download(url)).status_code == 202
        [task] = image_tasks(client, image.id)
    assert task["status"] == "success", task["message"]
    got = glint.images.get(CTX_A, image.id)
    assert (got.status, got.disk_format, got.size, got.virtual_size) == (
        states.ACTIVE, "raw", len(RAW), len(RAW))
    assert got.checksum == hashlib.md5(RAW).hexdigest()
    assert stored(glint) == {got.location: RAW}
    assert list(glint.settings.effective_work_dir.iterdir()) == []
