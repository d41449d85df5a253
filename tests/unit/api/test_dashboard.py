"""``GET /dashboard`` and ``/dashboard/data`` in process: admins only, what they count, and
user-controlled text kept as text. (The page in a real browser: tests/acceptance.)"""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable
from typing import Any

import pytest

from glint import app, errors
from glint.dashboard import per_minute
from glint.scripts.registry import Registry
from tests.unit.api.support import ADMIN, CTX_A, PROJECT_A, Echo, TestClient, add_image

SCRIPT = "<script>alert('x')</script>"


class Shout:
    """Fails with markup in its message, as a script could with a hostile input."""

    @staticmethod
    def main(ctx: Any) -> dict[str, Any]:
        raise errors.ScriptError(SCRIPT)


@pytest.fixture
def glint(make_glint: Callable[..., app.Glint]) -> app.Glint:
    return make_glint(registry=Registry.of({"echo": Echo, "shout": Shout}))


def test_non_admins_are_refused(client: TestClient) -> None:
    for path in ("/dashboard", "/dashboard/data", "/dashboard?task=x"):
        assert client.get(path, headers=PROJECT_A).status_code == 403


def test_counts_tasks_stores_and_throughput(client: TestClient, glint: app.Glint) -> None:
    add_image(glint, CTX_A, b"x" * 1000)
    for task_type in ("echo", "echo", "shout"):
        client.post("/v2/tasks", json={"type": task_type, "input": {}}, headers=PROJECT_A)
    data = client.get("/dashboard/data", headers=ADMIN).json()
    assert {(s["status"], s["type"], s["count"]) for s in data["tasks_by_state"]} == {
        ("success", "echo", 2), ("failure", "shout", 1)}
    assert [t["type"] for t in data["recent"]] == ["shout", "echo", "echo"]
    assert data["stores"] == [{"store": "memory", "images": 1, "bytes": 1000}]
    assert data["throughput"][-1]["finished"] == 3 and len(data["throughput"]) == 30
    assert data["workers"] == []  # the inline executor holds no lease once done


def test_task_messages_and_names_are_rendered_as_text(client: TestClient) -> None:
    hostile = {**PROJECT_A, "X-Project-Id": "<b>p</b>"}
    task = client.post("/v2/tasks", json={"type": "shout", "input": {}}, headers=hostile).json()
    for page in (client.get("/dashboard", headers=ADMIN),
                 client.get(f"/dashboard?task={task['id']}", headers=ADMIN)):
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert SCRIPT not in page.text and "<b>p</b>" not in page.text
        assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page.text
        assert "&lt;b&gt;p&lt;/b&gt;" in page.text
        # Only the page's own script runs: the one <script> carries the response's nonce.
        nonce = re.search(r"'nonce-([^']+)'", page.headers["content-security-policy"])
        assert nonce and page.text.count("<script") == 1
        assert f'<script nonce="{nonce.group(1)}">' in page.text


def test_a_tasks_page_lists_its_runs(client: TestClient) -> None:
    task = client.post("/v2/tasks", json={"type": "shout", "input": {}}, headers=PROJECT_A).json()
    runs = client.get(f"/dashboard/data?task={task['id']}", headers=ADMIN).json()["task"]["history"]
    assert [(r["number"], r["outcome"]) for r in runs] == [(1, "failure")]
    assert runs[0]["worker"] and runs[0]["started_at"] <= runs[0]["ended_at"]
    page = client.get(f"/dashboard?task={task['id']}", headers=ADMIN).text
    assert '<table id="history">' in page and '<span class="status failure">failure</span>' in page


def test_an_unknown_task_is_not_found(client: TestClient) -> None:
    assert client.get("/dashboard?task=nope", headers=ADMIN).status_code == 404
    assert client.get("/dashboard/data?task=nope", headers=ADMIN).status_code == 404


def test_per_minute_buckets_by_minute_from_the_start() -> None:
    since = datetime.datetime(2026, 1, 1, 12, 0)
    times = [since, since + datetime.timedelta(seconds=59), since + datetime.timedelta(minutes=2),
             since - datetime.timedelta(seconds=1), since + datetime.timedelta(minutes=3)]
    points = per_minute(times, since, 3)
    assert [p["finished"] for p in points] == [2, 0, 1]
    assert points[1]["minute"] == "2026-01-01T12:01:00Z"
