"""Every path that stores, copies, exports or converts bytes refuses what the gate refuses.

One unsafe case of each class (a qcow2 naming a host file as backing file, an 85-byte qcow2
declared raw, a VMDK naming a parent, a flat VMDK descriptor declared raw) goes through the
upload, the ``import`` task, both ``POST /v2/images/{id}/import`` methods that take new bytes,
``copy-image``, ``clone`` and ``export`` (as stored and converted). None may end with an active
image of the bytes, a copy in another store, or a file at the export target.
"""

from __future__ import annotations

import os
import pathlib
from collections.abc import Callable, Iterator

import pytest

from glint import app
from glint.api.app import create_app
from glint.context import RequestContext
from glint.images import states
from glint.stores.memory import MemoryStore
from glint.stores.multi import MultiStore
from tests.httpserver import LocalServer
from tests.unit.api.data_support import OCTET, stored
from tests.unit.api.support import CTX_A, PROJECT_A, TestClient, add_image, error_of
from tests.unit.scripts.support import active_image, live_images, run_task
from tests.unit.security import corpus

UNSAFE = ("qcow2-backing-absolute", "short-qcow2-85-bytes", "vmdk-parent-hint",
          "vmdk-flat-descriptor-as-raw")
ADMIN = {**PROJECT_A, "X-Roles": "admin,member,reader"}


@pytest.fixture(params=UNSAFE)
def case(request: pytest.FixtureRequest, cases: list[corpus.Case]) -> corpus.Case:
    return next(c for c in cases if c.name == request.param)


@pytest.fixture
def exports(tmp_path: pathlib.Path) -> pathlib.Path:
    (tmp_path / "exports").mkdir()
    return tmp_path / "exports"


@pytest.fixture
def glint(make_glint: Callable[..., app.Glint], exports: pathlib.Path,
          tmp_path: pathlib.Path) -> app.Glint:
    return make_glint(export_allowed_dirs=(exports,), work_dir=tmp_path / "work",
                      import_conversion_format="raw")


@pytest.fixture
def client(glint: app.Glint) -> Iterator[TestClient]:
    with TestClient(create_app(glint)) as client:
        yield client


@pytest.fixture
def server() -> Iterator[LocalServer]:
    with LocalServer() as server:
        yield server


def _refused(glint: app.Glint, image_id: str) -> None:
    image = glint.images.get(CTX_A, image_id)
    assert image.status == states.QUEUED
    assert stored(glint) == {}


def test_upload(client: TestClient, glint: app.Glint, case: corpus.Case) -> None:
    image = add_image(glint, CTX_A, disk_format=case.disk_format)
    response = client.put(f"/v2/images/{image.id}/file", content=case.data,
                          headers={**PROJECT_A, **OCTET})
    assert response.status_code == 415, response.text
    assert "refused" in error_of(response)["message"]
    _refused(glint, image.id)


@pytest.mark.parametrize("conversion", [None, "raw"])
def test_import_task(glint: app.Glint, ctx: RequestContext, server: LocalServer,
                     case: corpus.Case, conversion: str | None) -> None:
    server.serve("/image", case.data)
    task = run_task(glint, ctx, "import", {
        "import_from": server.url("/image"), "import_from_format": case.disk_format,
        "conversion_format": conversion, "image_properties": {"container_format": "bare"}})
    assert task.status == "failure"
    assert "refused" in task.message
    assert live_images(glint) == []
    assert stored(glint) == {}


def test_web_download(client: TestClient, glint: app.Glint, server: LocalServer,
                      case: corpus.Case) -> None:
    server.serve("/image", case.data)
    image = add_image(glint, CTX_A, disk_format=case.disk_format)
    response = client.post(f"/v2/images/{image.id}/import", headers=PROJECT_A, json={
        "method": {"name": "web-download", "uri": server.url("/image")}})
    assert response.status_code == 202
    _refused(glint, image.id)
    [task] = client.get(f"/v2/images/{image.id}/tasks", headers=PROJECT_A).json()["tasks"]
    assert task["status"] == "failure" and "refused" in task["message"]


def test_glance_direct(client: TestClient, glint: app.Glint, case: corpus.Case) -> None:
    image = add_image(glint, CTX_A, disk_format=case.disk_format)
    assert client.put(f"/v2/images/{image.id}/stage", content=case.data,
                      headers={**PROJECT_A, **OCTET}).status_code == 204
    response = client.post(f"/v2/images/{image.id}/import", headers=PROJECT_A,
                           json={"method": {"name": "glance-direct"}})
    assert response.status_code == 202
    _refused(glint, image.id)


def test_clone(glint: app.Glint, ctx: RequestContext, case: corpus.Case) -> None:
    # Stored unchecked (as with require_image_format_match off): a clone trusts it no more.
    source = active_image(glint, ctx, case.data, disk_format=case.disk_format)
    task = run_task(glint, ctx, "clone", {"image_id": source.id})
    assert task.status == "failure"
    assert "refused" in task.message
    assert [image.id for image in live_images(glint)] == [source.id]


@pytest.mark.parametrize("export_format", [None, "raw", "qcow2"])
def test_export(glint: app.Glint, ctx: RequestContext, exports: pathlib.Path,
                case: corpus.Case, export_format: str | None, tmp_path: pathlib.Path) -> None:
    source = active_image(glint, ctx, case.data, disk_format=case.disk_format)
    if export_format == source.disk_format:
        export_format = "vdi"
    task = run_task(glint, ctx, "export", {
        "image_id": source.id, "export_to": f"file://{exports}/out",
        **({"export_format": export_format} if export_format else {})})
    assert task.status == "failure"
    assert "refused" in task.message
    assert os.listdir(exports) == []
    assert not any((tmp_path / "work").rglob("*"))  # scratch space removed


def test_copy_image(make_glint: Callable[..., app.Glint], case: corpus.Case) -> None:
    backends = {"fast": MemoryStore(), "cheap": MemoryStore()}
    glint = make_glint(store=MultiStore(backends, default="fast",
                                        types=dict.fromkeys(backends, "memory")),
                       enabled_backends=dict.fromkeys(backends, "memory"),
                       default_backend="fast",
                       enabled_import_methods=("glance-direct", "copy-image"))
    image = add_image(glint, CTX_A, case.data, disk_format=case.disk_format)
    with TestClient(create_app(glint)) as client:
        response = client.post(f"/v2/images/{image.id}/import", headers=ADMIN, json={
            "method": {"name": "copy-image"}, "stores": ["cheap"],
            "all_stores_must_succeed": True})
        assert response.status_code == 202, response.text
        [task] = client.get(f"/v2/images/{image.id}/tasks", headers=PROJECT_A).json()["tasks"]
    assert task["status"] == "failure" and "refused" in task["message"]
    assert image.id not in backends["cheap"].blobs


def test_a_source_that_pauses_after_a_few_bytes(glint: app.Glint, ctx: RequestContext,
                                                server: LocalServer,
                                                cases: list[corpus.Case]) -> None:
    # The first chunk glint reads holds only part of the descriptor: the verdict is the same.
    flat = next(c for c in cases if c.name == "vmdk-flat-descriptor-as-raw")
    server.serve("/image", flat.data, delay=0.3)
    task = run_task(glint, ctx, "import", {
        "import_from": server.url("/image"), "import_from_format": "raw",
        "image_properties": {"container_format": "bare"}})
    assert task.status == "failure"
    assert "refused" in task.message
    assert stored(glint) == {}
