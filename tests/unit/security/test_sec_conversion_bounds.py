"""Conversion never writes more than ``image_size_cap`` nor more than the free space allows.

The bomb (corpus.py) is a valid 384 KiB qcow2 of 1 GiB virtual size whose clusters all map to
one: it passes inspection, and converted to raw it would write 1 GiB. The gate refuses it
before qemu-img starts when the virtual size is over the bound; and ``RLIMIT_FSIZE`` holds
qemu-img to the bound while it runs, whatever the header claims.
"""

from __future__ import annotations

import os
import pathlib

import pytest

from glint import app, errors, gate, qemu_img
from glint.context import RequestContext
from tests.httpserver import LocalServer
from tests.unit.scripts.support import active_image, live_images, run_task
from tests.unit.security import corpus

CAP = 64 * 1024 * 1024


@pytest.fixture
def bomb(cases: list[corpus.Case]) -> corpus.Case:
    return next(c for c in cases if c.name == "qcow2-bomb")


@pytest.fixture
def glint(make_glint: app.Glint, tmp_path: pathlib.Path) -> app.Glint:
    (tmp_path / "exports").mkdir()
    return make_glint(image_size_cap=CAP, work_dir=tmp_path / "work",  # type: ignore[operator]
                      export_allowed_dirs=(tmp_path / "exports",))


def _work_is_empty(tmp_path: pathlib.Path) -> bool:
    return not any(path.is_file() for path in (tmp_path / "work").rglob("*"))


def test_an_export_is_refused_before_converting(glint: app.Glint, ctx: RequestContext,
                                                bomb: corpus.Case,
                                                tmp_path: pathlib.Path) -> None:
    image = active_image(glint, ctx, bomb.data, disk_format="qcow2")
    task = run_task(glint, ctx, "export", {"image_id": image.id, "export_format": "raw",
                                           "export_to": f"file://{tmp_path}/exports/out.raw"})
    assert task.status == "failure"
    assert task.message == (f"Image refused: its virtual size ({corpus.BOMB_VIRTUAL_SIZE} "
                            f"bytes) is more than glint will write converting it ({CAP} "
                            "bytes, image_size_cap)")
    assert os.listdir(tmp_path / "exports") == []
    assert _work_is_empty(tmp_path)


def test_an_import_is_refused_before_converting(glint: app.Glint, ctx: RequestContext,
                                                bomb: corpus.Case,
                                                tmp_path: pathlib.Path) -> None:
    with LocalServer() as server:
        server.serve("/bomb", bomb.data)
        task = run_task(glint, ctx, "import", {
            "import_from": server.url("/bomb"), "import_from_format": "qcow2",
            "conversion_format": "raw", "image_properties": {"container_format": "bare"}})
    assert task.status == "failure"
    assert "is more than glint will write converting it" in task.message
    assert live_images(glint) == []
    assert _work_is_empty(tmp_path)


def test_the_free_space_bounds_a_conversion(bomb: corpus.Case, tmp_path: pathlib.Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    image_gate = gate.ImageGate(vmdk_allowed_types=(), size_cap=1 << 40, work_dir=tmp_path)
    usage = type("Usage", (), {"total": 10 * 1024**3, "free": 1024**3 + 512 * 1024**2})
    monkeypatch.setattr(gate.shutil, "disk_usage", lambda path: usage)
    # 1.5 GiB free less a 1 GiB margin: 512 MiB may be written, the bomb wants 1 GiB.
    assert image_gate.output_bound(tmp_path) == 512 * 1024**2
    source = tmp_path / "bomb.qcow2"
    source.write_bytes(bomb.data)
    with pytest.raises(errors.ImageRefused, match="the free space of work_dir"):
        image_gate.convert(source, "qcow2", "raw", tmp_path / "out.raw")
    assert not (tmp_path / "out.raw").exists()


def test_qemu_img_is_held_to_the_bound_while_it_runs(bomb: corpus.Case,
                                                     tmp_path: pathlib.Path) -> None:
    # Past the up-front check (say the header lied about less): the kernel stops the write.
    source = tmp_path / "bomb.qcow2"
    source.write_bytes(bomb.data)
    target = tmp_path / "out.raw"
    with pytest.raises(errors.ScriptError, match=f"more than {8 * 1024 * 1024} bytes"):
        qemu_img.convert(source, "qcow2", target, "raw", max_size=8 * 1024 * 1024)
    assert not target.exists() or target.stat().st_size <= 8 * 1024 * 1024


def test_a_crashed_conversions_scratch_is_removed_with_its_tasks_work_files(
        cases: list[corpus.Case], tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from glint.scripts import intake
    from glint.settings import Settings

    safe = next(c for c in cases if c.name == "safe-qcow2")
    source, target = tmp_path / "t1.source", tmp_path / "t1.raw"
    source.write_bytes(safe.data)
    seen: list[pathlib.Path] = []

    def crash(linked: pathlib.Path, *args: object, **kwargs: object) -> None:
        seen.append(linked.parent)
        raise KeyboardInterrupt  # the process dies here, as a kill would stop it

    monkeypatch.setattr(qemu_img, "convert", crash)
    image_gate = gate.ImageGate(vmdk_allowed_types=(), size_cap=1 << 40, work_dir=tmp_path)
    with pytest.raises(KeyboardInterrupt):
        image_gate.convert(source, "qcow2", "raw", target)
    assert seen[0].parent == tmp_path and seen[0].name.startswith("t1.raw.gate-")
    # A kill leaves the directory behind (here the context manager removed it): make one.
    leftover = tmp_path / "t1.raw.gate-x1y2z3"
    leftover.mkdir()
    (leftover / "source").write_bytes(safe.data)
    others = tmp_path / "t2.raw.gate-a1b2c3"
    others.mkdir()
    intake.remove_work_files(Settings(data_dir=tmp_path, work_dir=tmp_path), "t1")
    assert not leftover.exists() and not source.exists()
    assert others.exists()  # another task's
