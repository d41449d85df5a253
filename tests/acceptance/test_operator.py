"""The operator's view against a real `glint serve`: `glint task` on its database while an
import runs, the admin fields of a task as python-glanceclient reads (and validates) them, and
`/metrics` counting what happened."""

from __future__ import annotations

import http.server
import json
import pathlib
import threading
from collections.abc import Iterator

import httpx
import pytest

from tests import httpserver
from tests.acceptance.conftest import (
    GlanceCli,
    Server,
    admin_glint,
    glint_cli,
    parse_table,
    wait_for,
)

DATA = b"\0" * (4 << 20)


class HeldSource:
    """Serves one image, half of it at once and the rest once let go: an import stays
    processing as long as the test needs."""

    def __init__(self) -> None:
        self.release = threading.Event()
        release = self.release

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Length", str(len(DATA)))
                self.end_headers()
                try:
                    self.wfile.write(DATA[:len(DATA) // 2])
                    self.wfile.flush()
                    release.wait(60)
                    self.wfile.write(DATA[len(DATA) // 2:])
                except OSError:
                    pass  # glint stopped reading: the task was cancelled

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.httpd = httpserver.threaded(Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/disk.raw"

    def close(self) -> None:
        self.release.set()
        httpserver.stop(self.httpd)


@pytest.fixture
def source() -> Iterator[HeldSource]:
    held = HeldSource()
    yield held
    held.close()


@pytest.fixture
def admin_server(tmp_path: pathlib.Path) -> Iterator[Server]:
    with admin_glint(tmp_path) as server:
        yield server


def test_an_operator_watches_cancels_and_retries_an_import(
        admin_server: Server, source: HeldSource, tmp_path: pathlib.Path) -> None:
    server = admin_server
    body = {"type": "import", "input": {"import_from": source.url, "import_from_format": "raw",
                                        "image_properties": {"name": "held"}}}
    created = httpx.post(f"{server.url}/v2/tasks", json=body, timeout=10).json()
    task_id = created["id"]
    running = wait_for(server, task_id, "processing")
    assert running["attempts"] == 1 and running["lease_owner"] and running["lease_expires_at"]

    # glanceclient validates the task against the served schema: the admin fields pass.
    shown = parse_table(GlanceCli(server.url, tmp_path)("task-show", task_id).stdout)
    assert shown["lease_owner"] == running["lease_owner"] and shown["attempts"] == "1"

    listed = glint_cli(server, "task", "list", "--status", "processing")
    assert listed.returncode == 0, listed.stderr
    assert task_id in listed.stdout and str(running["lease_owner"]) in listed.stdout
    details = json.loads(glint_cli(server, "task", "show", task_id).stdout)
    assert details["lease_owner"] == running["lease_owner"]

    cancelled = glint_cli(server, "task", "cancel", task_id)
    assert cancelled.returncode == 0 and "cancel requested" in cancelled.stdout
    source.release.set()  # the runner sees the request at its next check
    ended = wait_for(server, task_id, "success", "failure")
    assert ended["status"] == "failure" and "cancelled" in str(ended["message"])

    retried = glint_cli(server, "task", "retry", task_id)  # runs in the command (thread executor)
    assert retried.returncode == 0, retried.stderr
    new_id, outcome = retried.stdout.splitlines()
    assert outcome == f"task {new_id}: success"
    again = httpx.get(f"{server.url}/v2/tasks/{new_id}", timeout=10).json()
    assert (again["status"], again["input"]) == ("success", body["input"])

    scraped = httpx.get(f"{server.url}/metrics", timeout=10).text
    assert 'glint_tasks_finished_total{status="failure",type="import"} 1.0' in scraped
    assert 'glint_tasks{status="success",type="import"} 1.0' in scraped  # from the database
    assert 'route="/v2/tasks/{task_id}"' in scraped
