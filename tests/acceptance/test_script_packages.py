"""export, clone and the example ``verify`` package, end to end through `glint serve`'s API.

glint runs in a subprocess on the filesystem store; every byte that comes out (a file, a PUT
to a loopback server, a download) is compared with what went in.
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import re
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.acceptance.conftest import BIN, FileServer, Server, start_glint
from tests.httpserver import LocalServer
from tests.tools import needs_qemu_img

DATA = os.urandom(2 * 1024 * 1024) + bytes(1024 * 1024)  # a 3 MiB raw disk, a third zeros


@pytest.fixture(scope="module")
def exports(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    return tmp_path_factory.mktemp("exports")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, exports: pathlib.Path) -> Iterator[Server]:
    glint = start_glint(tmp_path_factory.mktemp("glint"),
                        export_allowed_dirs=json.dumps([str(exports)]))
    yield glint
    glint.stop()


@pytest.fixture(scope="module")
def image_id(server: Server, file_server: FileServer) -> str:
    """An image imported the ordinary way, to export, clone and verify."""
    url = file_server.add("disk.raw", DATA)
    task = run(server, "import", {"import_from": url, "import_from_format": "raw",
                                  "image_properties": {"name": "disk", "os_distro": "demo"}})
    assert task["status"] == "success", task["message"]
    return str(task["result"]["image_id"])


def run(server: Server, task_type: str, task_input: dict[str, Any]) -> dict[str, Any]:
    """POST /v2/tasks, then poll the task until it ends."""
    created = httpx.post(f"{server.url}/v2/tasks", json={"type": task_type, "input": task_input})
    assert created.status_code == 201, created.text
    deadline = time.monotonic() + 60
    while True:
        task: dict[str, Any] = httpx.get(f"{server.url}/v2/tasks/{created.json()['id']}").json()
        if task["status"] in ("success", "failure") or time.monotonic() > deadline:
            return task
        time.sleep(0.1)


def image(server: Server, image_id: str) -> dict[str, Any]:
    response = httpx.get(f"{server.url}/v2/images/{image_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def download(server: Server, image_id: str) -> bytes:
    response = httpx.get(f"{server.url}/v2/images/{image_id}/file")
    assert response.status_code == 200, response.text
    return response.content


def describes(result: dict[str, Any], data: bytes) -> bool:
    return (result["size"], result["checksum"], result["os_hash_value"]) == (
        len(data), hashlib.md5(data).hexdigest(), hashlib.sha512(data).hexdigest())


def test_glint_scripts_lists_the_installed_package(server: Server) -> None:
    out = subprocess.run([str(BIN / "glint"), "scripts"], capture_output=True, text=True,
                         check=True, env={**os.environ, "GLINT_DATA_DIR": str(server.data_dir)})
    assert re.search(r"^verify\s+glint-verify\s+1\.0\.0\s+ok\s+Re-read", out.stdout, re.M)
    assert re.search(r"^export\s+glint\s+\S+\s+ok", out.stdout, re.M)
    assert re.search(r"^clone\s+glint\s+\S+\s+ok", out.stdout, re.M)
    schema = httpx.get(f"{server.url}/v2/schemas/task").json()
    assert {"clone", "export", "import", "verify"} <= set(schema["properties"]["type"]["enum"])


def test_verify_checks_an_image_through_the_api(server: Server, image_id: str) -> None:
    task = run(server, "verify", {"image_id": image_id})
    assert task["status"] == "success", task["message"]
    assert task["result"]["verified"] is True
    assert describes(task["result"], DATA)


def test_export_to_a_file(server: Server, image_id: str, exports: pathlib.Path) -> None:
    url = f"file://{exports}/disk.raw"
    task = run(server, "export", {"image_id": image_id, "export_to": url})
    assert task["status"] == "success", task["message"]
    assert task["result"]["export_to"] == url
    assert (exports / "disk.raw").read_bytes() == DATA
    assert describes(task["result"], DATA)


def test_export_refusals_are_400s(server: Server, image_id: str, tmp_path: pathlib.Path) -> None:
    response = httpx.post(f"{server.url}/v2/tasks", json={
        "type": "export", "input": {"image_id": image_id, "export_to": f"file://{tmp_path}/x"}})
    assert response.status_code == 400
    assert "is outside the directories exports may write to" in response.text


@needs_qemu_img
def test_export_converted_to_a_url_that_takes_a_put(server: Server, image_id: str,
                                                    tmp_path: pathlib.Path) -> None:
    with LocalServer() as receiver:
        url = receiver.accept("/uploads/disk.qcow2")
        task = run(server, "export", {"image_id": image_id, "export_to": url,
                                      "export_format": "qcow2"})
        assert task["status"] == "success", task["message"]
        received = receiver.uploads["/uploads/disk.qcow2"]
    assert describes(task["result"], received)
    qcow2 = tmp_path / "disk.qcow2"
    qcow2.write_bytes(received)
    back = tmp_path / "back.raw"
    subprocess.run(["qemu-img", "convert", "-f", "qcow2", "-O", "raw", str(qcow2), str(back)],
                   check=True)
    assert back.read_bytes() == DATA


def test_clone_then_verify_then_damage(server: Server, image_id: str) -> None:
    task = run(server, "clone", {"image_id": image_id, "image_properties": {"name": "copy"}})
    assert task["status"] == "success", task["message"]
    clone_id = task["result"]["image_id"]
    source, clone = image(server, image_id), image(server, clone_id)
    assert (clone["name"], clone["os_distro"], clone["status"]) == ("copy", "demo", "active")
    for key in ("size", "checksum", "os_hash_algo", "os_hash_value", "disk_format",
                "container_format", "owner"):
        assert clone[key] == source[key]
    assert download(server, clone_id) == DATA
    assert run(server, "verify", {"image_id": clone_id})["status"] == "success"

    stored = server.data_dir / "images" / clone_id  # the filesystem store's file
    with stored.open("r+b") as handle:
        first = handle.read(1)
        handle.seek(0)
        handle.write(bytes([first[0] ^ 0xFF]))  # same size, one byte different
    damaged = run(server, "verify", {"image_id": clone_id})
    assert damaged["status"] == "failure"
    assert damaged["message"] == (f"Image {clone_id} does not match its record: "
                                  "checksum (md5), os_hash_value (sha512) differ")
    assert run(server, "verify", {"image_id": image_id})["status"] == "success"
