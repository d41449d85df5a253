"""Containers other than ``bare`` are opaque: stored as they are, never converted or probed.

Their bytes wrap a disk (an OVA's tar, a docker image, gzip) so they need not be in the
``disk_format``; the gate lets them through unless the bytes are themselves an unsafe disk
image (test_sec_gate_verdicts.py), and no conversion ever hands them to qemu-img.
"""

from __future__ import annotations

import os
import pathlib
from collections.abc import Callable

import pytest

from glint import app
from glint.context import RequestContext
from tests.httpserver import LocalServer
from tests.unit.scripts.support import active_image, live_images, run_task

WRAPPED = b"ustar-ish wrapper " + bytes(range(256)) * 512


@pytest.fixture
def glint(make_glint: Callable[..., app.Glint], tmp_path: pathlib.Path) -> app.Glint:
    (tmp_path / "exports").mkdir()
    return make_glint(work_dir=tmp_path / "work", export_allowed_dirs=(tmp_path / "exports",))


def test_an_opaque_image_is_exported_as_it_is_but_never_converted(
        glint: app.Glint, ctx: RequestContext, tmp_path: pathlib.Path) -> None:
    image = active_image(glint, ctx, WRAPPED, disk_format="qcow2", container_format="ova")
    exports = tmp_path / "exports"
    task = run_task(glint, ctx, "export", {"image_id": image.id,
                                           "export_to": f"file://{exports}/as-is"})
    assert task.status == "success", task.message
    assert (exports / "as-is").read_bytes() == WRAPPED
    task = run_task(glint, ctx, "export", {"image_id": image.id, "export_format": "raw",
                                           "export_to": f"file://{exports}/converted"})
    assert (task.status, task.message) == (
        "failure", "Image refused: container_format 'ova' is stored as it is and never converted")
    assert os.listdir(exports) == ["as-is"]


def test_an_opaque_import_is_stored_unconverted(glint: app.Glint, ctx: RequestContext) -> None:
    with LocalServer() as server:
        server.serve("/wrapped", WRAPPED)
        task = run_task(glint, ctx, "import", {
            "import_from": server.url("/wrapped"), "import_from_format": "qcow2",
            "conversion_format": "raw", "image_properties": {"container_format": "ovf"}})
    assert task.status == "success", task.message
    [image] = live_images(glint)
    assert (image.disk_format, image.container_format, image.size) == ("qcow2", "ovf",
                                                                       len(WRAPPED))
