"""Prometheus metrics: ``/metrics`` answers without a token, and each metric moves when the
thing it counts happens (task created, run, finished, retried, reaped; bytes moved; requests).
"""

from __future__ import annotations

import datetime
import json
import os
import pathlib
import re
import subprocess
import sys
import types
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client import REGISTRY, parser

from glint import app, errors, health, metrics
from glint.api.app import create_app
from glint.context import RequestContext
from glint.db import leases, models
from glint.scripts.registry import Registry
from tests.conftest import MakeGlint
from tests.unit.api.support import CTX_A, PROJECT_A, TestClient, add_image

ROOT = pathlib.Path(__file__).resolve().parents[2]


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def script(main: Any) -> types.SimpleNamespace:
    return types.SimpleNamespace(main=main)


def scraped(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in parser.text_string_to_metric_families(text) for s in family.samples}


@pytest.fixture
def client(make_glint: MakeGlint) -> Iterator[TestClient]:
    glint = make_glint(registry=Registry.of({"m_ok": script(lambda c: {"ok": True})}),
                       default_project_id="")  # a request without identity would be 401
    with TestClient(create_app(glint)) as test_client:
        test_client.glint = glint  # type: ignore[attr-defined]
        yield test_client


def test_metrics_answer_without_a_token_in_the_text_format(client: TestClient) -> None:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"] == metrics.CONTENT_TYPE
    samples = scraped(response.text)
    assert samples[("glint_metrics_database_up", ())] == 1
    assert client.post("/metrics").status_code == 405
    assert client.get("/v2/images").status_code == 401  # the API itself still wants identity


def test_requests_are_counted_by_route_template_and_status(client: TestClient) -> None:
    labels = {"method": "GET", "route": "/v2/images/{image_id}", "status": "404"}
    before = value("glint_http_requests_total", **labels)
    timed = value("glint_http_request_duration_seconds_count", method="GET",
                  route="/v2/images/{image_id}")
    for image_id in ("6b8a3e2c-0000-4000-8000-000000000001", "another-id"):
        assert client.get(f"/v2/images/{image_id}", headers=PROJECT_A).status_code == 404
    assert value("glint_http_requests_total", **labels) == before + 2
    assert value("glint_http_request_duration_seconds_count", method="GET",
                 route="/v2/images/{image_id}") == timed + 2
    unmatched = value("glint_http_requests_total", method="GET", route="unmatched",
                      status="404")
    client.get("/no/such/path/123", headers=PROJECT_A)
    assert value("glint_http_requests_total", method="GET", route="unmatched",
                 status="404") == unmatched + 1
    text = client.get("/metrics").text
    assert "another-id" not in text and "/no/such/path" not in text  # never a raw path


def test_a_task_is_counted_created_waited_run_and_finished(client: TestClient) -> None:
    before = {name: value(name, **labels) for name, labels in (
        ("glint_tasks_created_total", {"type": "m_ok"}),
        ("glint_tasks_finished_total", {"type": "m_ok", "status": "success"}),
        ("glint_task_duration_seconds_count", {"type": "m_ok"}),
        ("glint_task_queue_wait_seconds_count", {"type": "m_ok"}))}
    response = client.post("/v2/tasks", json={"type": "m_ok", "input": {}}, headers=PROJECT_A)
    assert response.status_code == 201
    for (name, labels), count in zip((
            ("glint_tasks_created_total", {"type": "m_ok"}),
            ("glint_tasks_finished_total", {"type": "m_ok", "status": "success"}),
            ("glint_task_duration_seconds_count", {"type": "m_ok"}),
            ("glint_task_queue_wait_seconds_count", {"type": "m_ok"})), before.values(),
            strict=True):
        assert value(name, **labels) == count + 1, name
    samples = scraped(client.get("/metrics").text)
    assert samples[("glint_tasks", (("status", "success"), ("type", "m_ok")))] == 1


def test_failures_retries_and_the_reaper_are_counted(make_glint: MakeGlint,
                                                     ctx: RequestContext) -> None:
    calls: list[int] = []

    def flaky(_ctx: Any) -> dict[str, Any]:
        calls.append(1)
        if len(calls) == 1:
            raise errors.TransientError("busy")
        raise errors.ScriptError("broken")

    glint = make_glint(registry=Registry.of({"m_flaky": script(flaky),
                                             "m_lost": script(lambda c: {})}),
                       task_retry_backoff=0.01, task_max_attempts=1)
    retries, failed = (value("glint_task_retries_total", type="m_flaky"),
                       value("glint_tasks_finished_total", type="m_flaky", status="failure"))
    assert glint.tasks.create(ctx, "m_flaky", {}).id
    assert value("glint_task_retries_total", type="m_flaky") == retries + 1
    assert value("glint_tasks_finished_total", type="m_flaky", status="failure") == failed + 1

    expiries, fails = (value("glint_task_lease_expiries_total", type="m_lost"),
                       value("glint_reaper_actions_total", action="fail"))
    glint.executor.shutdown()
    task_id = glint.tasks.create(ctx, "m_lost", {}).id
    with glint.db.session() as session:
        assert leases.claim(session, task_id, "dead-worker", 30, models.utcnow()) is not None
        session.get(models.Task, task_id).lease_expires_at = datetime.datetime(2000, 1, 1)  # type: ignore[union-attr]
    glint.runner.reap()
    assert value("glint_task_lease_expiries_total", type="m_lost") == expiries + 1
    assert value("glint_reaper_actions_total", action="fail") == fails + 1


def test_bytes_uploaded_and_downloaded_are_counted_by_store(client: TestClient) -> None:
    glint: app.Glint = client.glint  # type: ignore[attr-defined]
    store = glint.images.backends.default
    up, down = (value("glint_image_data_bytes_total", direction="upload", store=store),
                value("glint_image_data_bytes_total", direction="download", store=store))
    image = client.post("/v2/images", json={"disk_format": "raw", "container_format": "bare"},
                        headers=PROJECT_A).json()
    data = b"x" * 3000
    assert client.put(f"/v2/images/{image['id']}/file", content=data,
                      headers={**PROJECT_A, "Content-Type": "application/octet-stream"}
                      ).status_code == 204
    assert client.get(f"/v2/images/{image['id']}/file", headers=PROJECT_A).content == data
    assert value("glint_image_data_bytes_total", direction="upload", store=store) == up + 3000
    assert value("glint_image_data_bytes_total", direction="download", store=store) == down + 3000
    add_image(glint, CTX_A, b"y" * 1000)
    samples = scraped(client.get("/metrics").text)
    assert samples[("glint_images", (("store", store),))] == 2
    assert samples[("glint_image_bytes", (("store", store),))] == 4000


def test_database_gauges_are_cached_and_a_database_down_is_said(make_glint: MakeGlint,
                                                                ctx: RequestContext) -> None:
    glint = make_glint(registry=Registry.of({"m_ok": script(lambda c: {})}))
    now = [0.0]
    collector = metrics.DatabaseCollector(glint.db, "default", clock=lambda: now[0])
    exposition = metrics.Exposition(collector)

    def tasks() -> float:
        return scraped(exposition.render().decode()).get(
            ("glint_tasks", (("status", "success"), ("type", "m_ok"))), 0)

    assert tasks() == 0
    glint.tasks.create(ctx, "m_ok", {})
    assert tasks() == 0  # cached
    now[0] += metrics.CACHE_SECONDS
    assert tasks() == 1
    glint.db.engine.dispose()
    with glint.db.engine.begin() as connection:
        connection.exec_driver_sql("DROP TABLE tasks")
    now[0] += metrics.CACHE_SECONDS
    samples = scraped(exposition.render().decode())
    assert samples[("glint_metrics_database_up", ())] == 0
    assert ("glint_tasks_created_total", (("type", "m_ok"),)) in samples  # the rest still answers


def test_the_worker_health_port_answers_metrics(make_glint: MakeGlint) -> None:
    glint = make_glint()
    assert glint.health is not None and glint.metrics is not None
    server = health.serve(glint.health, "127.0.0.1", 0, glint.metrics.render)
    try:
        port = server.server_address[1]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
            assert answer.headers["Content-Type"] == metrics.CONTENT_TYPE
            assert ("glint_metrics_database_up", ()) in scraped(answer.read().decode())
    finally:
        server.shutdown()
        server.server_close()


def test_every_metric_the_dashboard_queries_is_glints() -> None:
    dashboard = json.loads((ROOT / "docs" / "grafana" / "glint.json").read_text())
    exprs = [target["expr"] for panel in dashboard["panels"]
             for target in panel.get("targets", [])]
    assert exprs
    used = {word for expr in exprs for word in _metric_words(expr)}
    assert used and used <= metrics.names(), used - metrics.names()


def test_every_metric_is_in_the_operations_table() -> None:
    text = (ROOT / "docs" / "operations.md").read_text()
    families = {name.removesuffix("_total").removesuffix("_bucket") for name in metrics.names()
                if not name.endswith(("_sum", "_count"))}
    missing = {name for name in families if f"`{name}" not in text}
    assert not missing


def _metric_words(expr: str) -> list[str]:
    return re.findall(r"\bglint_[a-z_]+", expr)


def test_the_server_names_the_same_multiprocess_directory() -> None:
    from glint.server import metrics_files

    assert metrics_files.MULTIPROC_ENV == metrics.MULTIPROC_ENV


FORK_WHILE_COUNTING = """
import inspect, os, signal, sys, threading, time
from prometheus_client import values
from glint import metrics
if sys.argv[1] == "hooks":
    metrics.hold_locks_across_fork()
lock = inspect.getclosurevars(values.ValueClass.inc).nonlocals["lock"]
inside = threading.Event()

def count():  # a thread of the parent part-way through a metric update
    with lock:
        inside.set()
        time.sleep(0.3)

threading.Thread(target=count).start()
inside.wait()
pid = os.fork()
if pid == 0:
    signal.alarm(3)  # a child that hangs on the lock is killed
    metrics.TASKS_CREATED.labels("import").inc()
    os._exit(0)
_, status = os.waitpid(pid, 0)
sys.exit(0 if os.waitstatus_to_exitcode(status) == 0 else 1)
"""


def test_a_child_forked_while_a_thread_counts_can_count(tmp_path: pathlib.Path) -> None:
    """``glint worker --pool prefork``: Celery forks a child while the parent's reaper may be
    inside a metric update (prometheus-client's multiprocess mode: one lock for every value).
    With :func:`glint.metrics.hold_locks_across_fork` the fork waits for it, and the child
    counts instead of hanging on a lock held by a thread it does not have."""
    env = {**os.environ, metrics.MULTIPROC_ENV: str(tmp_path)}
    run = subprocess.run([sys.executable, "-c", FORK_WHILE_COUNTING, "hooks"], env=env,
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
