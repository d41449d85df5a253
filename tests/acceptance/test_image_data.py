"""Image data in and out, and interoperable import, driven by the `glance` CLI and openstacksdk
against `glint serve`. Each test checks what the server recorded and serves back."""

from __future__ import annotations

import hashlib
import os
import pathlib
import time
from typing import Any

import httpx
import pytest

from tests.acceptance.conftest import FileServer, GlanceCli, Server

FORMATS = ("--disk-format", "raw", "--container-format", "bare")


def record(server: Server, image_id: str) -> dict[str, Any]:
    """The image as the server shows it."""
    response = httpx.get(f"{server.url}/v2/images/{image_id}", timeout=10)
    response.raise_for_status()
    image: dict[str, Any] = response.json()
    return image


def wait_for_status(server: Server, image_id: str, wanted: str,
                    timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        image = record(server, image_id)
        if image["status"] == wanted or time.monotonic() > deadline:
            return image
        time.sleep(0.1)


def assert_holds(server: Server, image_id: str, data: bytes) -> None:
    """The record matches ``data`` and the server serves ``data`` back."""
    image = record(server, image_id)
    assert image["status"] == "active"
    assert image["size"] == len(data)
    assert image["checksum"] == hashlib.md5(data).hexdigest()
    assert image["os_hash_algo"] == "sha512"
    assert image["os_hash_value"] == hashlib.sha512(data).hexdigest()
    assert "os_glance_import_task" not in image
    served = httpx.get(f"{server.url}/v2/images/{image_id}/file", timeout=30)
    assert served.status_code == 200
    assert served.headers["content-md5"] == image["checksum"]
    assert hashlib.sha512(served.content).hexdigest() == image["os_hash_value"]


def payload(tmp_path: pathlib.Path, name: str, size: int = 3 * 1024 * 1024 + 17) -> tuple[bytes,
                                                                                        pathlib.Path]:
    data = os.urandom(size)
    path = tmp_path / name
    path.write_bytes(data)
    return data, path


def assert_import_task(glance: GlanceCli, server: Server, image_id: str) -> None:
    """One successful api_image_import task, shown by `glance image-tasks` and the API."""
    shown = glance("image-tasks", image_id).stdout  # the CLI prints message, status, time
    assert "| success |" in shown
    [task] = httpx.get(f"{server.url}/v2/images/{image_id}/tasks").json()["tasks"]
    assert (task["type"], task["status"], task["image_id"]) == ("api_image_import", "success",
                                                                image_id)


def no_staging_residue(server: Server) -> bool:
    staging = server.data_dir / "staging"
    return not staging.exists() or not any(staging.iterdir())


# -- glanceclient ----------------------------------------------------------------------------

def test_image_create_with_file_then_download(glance: GlanceCli, glint_server: Server,
                                              tmp_path: pathlib.Path) -> None:
    data, path = payload(tmp_path, "disk.raw")
    created = glance.table("image-create", "--name", "with-file", *FORMATS, "--file", str(path))
    assert created["status"] == "active"
    assert created["checksum"] == hashlib.md5(data).hexdigest()
    assert int(created["size"]) == len(data)
    assert_holds(glint_server, created["id"], data)

    out = tmp_path / "downloaded"
    glance("image-download", "--file", str(out), created["id"])  # the client checks the hash
    assert out.read_bytes() == data


def test_image_upload_to_a_queued_image(glance: GlanceCli, glint_server: Server,
                                        tmp_path: pathlib.Path) -> None:
    data, path = payload(tmp_path, "upload.raw")
    created = glance.table("image-create", "--name", "upload-later", *FORMATS, close_stdin=True)
    assert created["status"] == "queued"
    glance("image-upload", "--file", str(path), created["id"])
    assert_holds(glint_server, created["id"], data)
    again = glance("image-upload", "--file", str(path), created["id"], check=False)
    assert again.returncode != 0 and "status queued" in again.stderr
    assert_holds(glint_server, created["id"], data)


def test_image_stage_then_import_glance_direct(glance: GlanceCli, glint_server: Server,
                                               tmp_path: pathlib.Path) -> None:
    data, path = payload(tmp_path, "staged.raw")
    created = glance.table("image-create", "--name", "staged", *FORMATS, close_stdin=True)
    glance("image-stage", "--file", str(path), created["id"])
    staged = record(glint_server, created["id"])
    assert (staged["status"], staged["size"], staged["checksum"]) == ("uploading", len(data),
                                                                      None)
    assert (glint_server.data_dir / "staging" / created["id"]).read_bytes() == data

    glance("image-import", "--import-method", "glance-direct", created["id"])
    wait_for_status(glint_server, created["id"], "active")
    assert_holds(glint_server, created["id"], data)
    assert no_staging_residue(glint_server)

    assert_import_task(glance, glint_server, created["id"])


def test_image_create_via_import_web_download(glance: GlanceCli, glint_server: Server,
                                              file_server: FileServer) -> None:
    data = os.urandom(2 * 1024 * 1024 + 3)
    url = file_server.add("web.raw", data)
    created = glance.table("image-create-via-import", "--name", "from-web", *FORMATS,
                           "--import-method", "web-download", "--uri", url, close_stdin=True)
    image = wait_for_status(glint_server, created["id"], "active")
    assert image["name"] == "from-web"
    assert_holds(glint_server, created["id"], data)
    assert_import_task(glance, glint_server, created["id"])


def test_failed_web_download_puts_the_image_back(glance: GlanceCli, glint_server: Server,
                                                 file_server: FileServer) -> None:
    created = glance.table("image-create", "--name", "broken-web", *FORMATS, close_stdin=True)
    glance("image-import", "--import-method", "web-download", "--uri",
           f"{file_server.url}/nothing-here", created["id"], close_stdin=True)
    deadline = time.monotonic() + 30
    while "failure" not in (tasks := glance("image-tasks", created["id"]).stdout):
        assert time.monotonic() < deadline, tasks
        time.sleep(0.2)
    assert "404" in tasks
    image = record(glint_server, created["id"])
    assert (image["status"], image["size"], image["checksum"]) == ("queued", None, None)
    assert "os_glance_import_task" not in image


# -- openstacksdk ----------------------------------------------------------------------------

# openstacksdk opens ``filename=`` and leaves closing it to the garbage collector.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_openstacksdk_data_and_import(sdk: Any, glint_server: Server, file_server: FileServer,
                                      tmp_path: pathlib.Path) -> None:
    data, path = payload(tmp_path, "sdk.raw", 1024 * 1024 + 1)
    from_data = sdk.image.create_image("sdk-data", data=data, disk_format="raw",
                                       container_format="bare")
    assert_holds(glint_server, from_data.id, data)
    from_file = sdk.image.create_image("sdk-file", filename=str(path), disk_format="raw",
                                       container_format="bare")
    assert_holds(glint_server, from_file.id, data)
    assert sdk.image.download_image(from_file.id).content == data

    web = os.urandom(512 * 1024)
    queued = sdk.image.create_image("sdk-web", disk_format="raw", container_format="bare",
                                    allow_duplicates=True)
    sdk.image.import_image(queued, method="web-download", uri=file_server.add("sdk.raw", web))
    wait_for_status(glint_server, queued.id, "active")
    assert_holds(glint_server, queued.id, web)

    [image_task] = list(sdk.image.image_tasks(queued))
    task = sdk.image.get_task(image_task.id)
    assert (task.type, task.status, task.result) == ("api_image_import", "success",
                                                     {"image_id": queued.id})
    assert task.id in [t.id for t in sdk.image.tasks(type="api_image_import")]
    assert [s.id for s in sdk.image.stores()] == ["filesystem"]

    for image in (from_data, from_file, queued):
        sdk.image.delete_image(image)
        assert httpx.get(f"{glint_server.url}/v2/images/{image.id}").status_code == 404
    assert not (glint_server.data_dir / "images" / queued.id).exists()
