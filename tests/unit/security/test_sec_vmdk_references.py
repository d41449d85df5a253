"""The attack run's chain: a VMDK naming another image as its parent, exported with conversion.

Image X holds a flat VMDK descriptor (``RW 2048 FLAT "/etc/passwd" 0``) under a container that
is not ``bare``; image Y is a monolithicSparse VMDK whose descriptor names X as
``parentFileNameHint``. Exporting Y as raw once made qemu-img read X, and through it the host
file, into the export. Each link is now cut: Y cannot be stored or exported, X cannot be stored
(its bytes are an unsafe disk image whatever the container) nor converted, and qemu-img never
opens a backing file nor runs next to other images.
"""

from __future__ import annotations

import os
import pathlib
from collections.abc import Callable

import pytest

from glint import app, errors, gate, qemu_img
from glint.context import RequestContext
from glint.stores.filesystem import FilesystemStore
from tests.unit.scripts.support import active_image, run_task
from tests.unit.security import corpus

PASSWD = pathlib.Path("/etc/passwd").read_bytes()


@pytest.fixture
def glint(make_glint: Callable[..., app.Glint], tmp_path: pathlib.Path) -> app.Glint:
    (tmp_path / "exports").mkdir()
    return make_glint(store=FilesystemStore(tmp_path / "images"), work_dir=tmp_path / "work",
                      export_allowed_dirs=(tmp_path / "exports",))


def _parent_naming(name: str, directory: pathlib.Path) -> bytes:
    """A monolithicSparse VMDK whose descriptor names ``name`` as its parent."""
    base = directory / "base.vmdk"
    corpus.qemu_img("create", "-q", "-f", "vmdk", "-o", "subformat=monolithicSparse", str(base),
                    "1M")
    return corpus.with_descriptor(base.read_bytes(),
                                  f'parentFileNameHint="{name}"\nRW 2048 SPARSE "x.vmdk"\n')


@pytest.mark.parametrize("export_format", ["raw", "qcow2"])
def test_the_chain_exports_nothing(glint: app.Glint, ctx: RequestContext,
                                   cases: list[corpus.Case], tmp_path: pathlib.Path,
                                   export_format: str) -> None:
    flat = next(c for c in cases if c.name == "vmdk-flat-descriptor")
    x = active_image(glint, ctx, flat.data, disk_format="vmdk", container_format="ovf")
    y = active_image(glint, ctx, _parent_naming(x.id, tmp_path), disk_format="vmdk")
    for image in (x, y):
        task = run_task(glint, ctx, "export", {
            "image_id": image.id, "export_format": export_format,
            "export_to": f"file://{tmp_path}/exports/{image.id}"})
        assert task.status == "failure"
        assert "refused" in task.message
    assert os.listdir(tmp_path / "exports") == []


def test_x_is_refused_as_an_upload_whatever_its_container(cases: list[corpus.Case],
                                                          tmp_path: pathlib.Path) -> None:
    flat = next(c for c in cases if c.name == "vmdk-flat-descriptor")
    image_gate = gate.ImageGate.from_settings(_settings(tmp_path))
    for container_format in ("ovf", "ova", "bare", "docker"):
        with pytest.raises(errors.ImageRefused):
            list(image_gate.stream([flat.data], "vmdk", container_format))


def test_qemu_img_never_opens_a_parent_even_unchecked(tmp_path: pathlib.Path) -> None:
    # Below the gate: a convert of a VMDK whose parent exists, full of data, reads none of it,
    # because the source is opened with "backing": null.
    (tmp_path / "parent.raw").write_bytes(b"\xab" * (1 << 20))
    parent, child = tmp_path / "parent.vmdk", tmp_path / "child.vmdk"
    corpus.qemu_img("convert", "-q", "-f", "raw", "-O", "vmdk", str(tmp_path / "parent.raw"),
                    str(parent))
    corpus.qemu_img("create", "-q", "-f", "vmdk", "-b", str(parent), "-F", "vmdk", str(child))
    target = tmp_path / "out.raw"
    qemu_img.convert(child, "vmdk", target, "raw", max_size=1 << 30)
    assert target.read_bytes() == bytes(1 << 20)  # zeros: the parent's data was not read


def _settings(tmp_path: pathlib.Path) -> object:
    from glint.settings import Settings
    return Settings(data_dir=tmp_path)
