"""The README's tour, driven by python-glanceclient against `glint serve`."""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import time
from typing import Any

import httpx

from tests.acceptance.conftest import FileServer, GlanceCli, Server, start_glint


def wait_for_task(glance: GlanceCli, task_id: str, timeout: float = 60) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    while True:
        task = glance.table("task-show", task_id)
        if task["status"] in ("success", "failure") or time.monotonic() > deadline:
            return task
        time.sleep(0.2)


def import_input(url: str, name: str) -> str:
    return json.dumps({"import_from": url, "import_from_format": "raw",
                       "image_properties": {"name": name, "disk_format": "raw",
                                            "container_format": "bare"}})


def test_import_then_download_with_glanceclient(glance: GlanceCli, file_server: FileServer,
                                                tmp_path: pathlib.Path) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)
    url = file_server.add("cirros.raw", data)

    created = glance.table("task-create", "--type", "import", "--input", import_input(url, "tour"))
    assert created["type"] == "import"
    assert created["status"] in ("pending", "processing", "success")
    task = wait_for_task(glance, created["id"])
    assert task["status"] == "success", task
    image_id = json.loads(task["result"].replace("'", '"'))["image_id"]
    # glint's progress field, declared in the served schema, passes the client's validation.
    progress = json.loads(task["progress"].replace("'", '"').replace("None", "null"))
    assert progress["total"] == len(data) and 0 < progress["percent"] <= 100

    listing = glance("task-list").stdout
    assert created["id"] in listing

    image = glance.table("image-show", image_id)
    assert image["status"] == "active"
    assert image["name"] == "tour"
    assert int(image["size"]) == len(data)
    assert image["checksum"] == hashlib.md5(data).hexdigest()
    assert image["os_hash_algo"] == "sha512"
    assert image["os_hash_value"] == hashlib.sha512(data).hexdigest()

    out = tmp_path / "downloaded"
    glance("image-download", "--file", str(out), image_id)  # the client verifies the hash too
    downloaded = out.read_bytes()
    assert hashlib.md5(downloaded).hexdigest() == image["checksum"]
    assert hashlib.sha512(downloaded).hexdigest() == image["os_hash_value"]


def test_openstacksdk_reads_tasks_with_progress(sdk: Any, file_server: FileServer) -> None:
    url = file_server.add("sdk.raw", os.urandom(2 * 1024 * 1024))
    created = sdk.image.create_task(type="import", input=json.loads(import_input(url, "sdk")))
    deadline = time.monotonic() + 60
    task = sdk.image.get_task(created.id)
    while task.status not in ("success", "failure") and time.monotonic() < deadline:
        time.sleep(0.2)
        task = sdk.image.get_task(created.id)
    assert (task.status, task.type) == ("success", "import"), task.message
    assert task.result["image_id"]


def test_failed_import_leaves_no_image(glance: GlanceCli, glint_server: Server,
                                       file_server: FileServer) -> None:
    created = glance.table("task-create", "--type", "import", "--input",
                           import_input(f"{file_server.url}/no-such-file", "missing"))
    task = wait_for_task(glance, created["id"])
    assert task["status"] == "failure"
    assert "404" in task["message"]
    images = httpx.get(f"{glint_server.url}/v2/images").json()["images"]
    assert all(i["name"] != "missing" for i in images)
    stored = [p for p in (glint_server.data_dir / "images").iterdir()]
    active = {i["id"] for i in images if i["status"] == "active"}
    assert {p.name for p in stored} == active  # no orphaned or temporary files


def test_bad_input_is_refused_with_400(glance: GlanceCli) -> None:
    result = glance("task-create", "--type", "import", "--input",
                    json.dumps({"import_from": "file:///etc/passwd", "import_from_format": "raw",
                                "image_properties": {}}), check=False)
    assert result.returncode != 0
    assert "scheme 'file' is not allowed" in result.stderr


def test_projects_do_not_see_each_other(glint_server: Server, file_server: FileServer) -> None:
    url = file_server.add("small.raw", b"x" * 1024)
    body = {"type": "import", "input": json.loads(import_input(url, "private-one"))}
    alice = {"X-Project-Id": "alice-project", "X-User-Id": "alice", "X-Roles": "member"}
    bob = {"X-Project-Id": "bob-project", "X-User-Id": "bob", "X-Roles": "member"}
    created = httpx.post(f"{glint_server.url}/v2/tasks", json=body, headers=alice)
    assert created.status_code == 201
    task_id = created.json()["id"]
    assert httpx.get(f"{glint_server.url}/v2/tasks/{task_id}", headers=bob).status_code == 404
    bob_tasks = httpx.get(f"{glint_server.url}/v2/tasks", headers=bob).json()["tasks"]
    assert task_id not in {t["id"] for t in bob_tasks}
    assert httpx.get(f"{glint_server.url}/v2/tasks/{task_id}", headers=alice).status_code == 200


def test_clean_shutdown_and_restart_keep_tasks(tmp_path: pathlib.Path,
                                               file_server: FileServer) -> None:
    server = start_glint(tmp_path)
    url = file_server.add("keep.raw", b"k" * 4096)
    created = httpx.post(f"{server.url}/v2/tasks", json={
        "type": "import", "input": json.loads(import_input(url, "kept"))}).json()
    deadline = time.monotonic() + 30
    while httpx.get(f"{server.url}/v2/tasks/{created['id']}").json()["status"] != "success":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert server.stop() == 0
    again = start_glint(tmp_path)
    try:
        task = httpx.get(f"{again.url}/v2/tasks/{created['id']}").json()
        assert task["status"] == "success"
        image = httpx.get(f"{again.url}/v2/images/{task['result']['image_id']}/file")
        assert image.content == b"k" * 4096
    finally:
        again.stop()
