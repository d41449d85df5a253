"""The celery executor with real `glint worker` processes, on RabbitMQ and on Redis, with PostgreSQL.

Workers are subprocesses in their own process groups; the test side is an in-process glint
whose executor publishes to the same broker (the rig: tests/integration/celery_support.py).
"""

from __future__ import annotations

import json
import os
import pathlib
import signal
import socket
import time
import urllib.request
from typing import Any

import pytest
import sqlalchemy as sa

from glint import app
from glint.db import models
from glint.tasks import runner as runner_mod
from tests.integration import celery_support
from tests.integration.celery_support import Workers, wait_until
from tests.integration.tcpproxy import TcpProxy

# The rig's fixtures, which the tests below take by name.
database_url = celery_support.database_url
broker = celery_support.broker
workers = celery_support.workers
api = celery_support.api


def _task(glint: app.Glint, task_id: str) -> models.Task:
    with glint.db.reader() as session:
        task = session.get(models.Task, task_id)
        assert task is not None
        return task


def _lines(path: pathlib.Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


def _create(glint: app.Glint, ctx: Any, record: pathlib.Path, seconds: float) -> str:
    return glint.tasks.create(ctx, "test-slow", {"seconds": seconds,
                                                 "record_dir": str(record)}).id


def _final(glint: app.Glint, task_id: str) -> bool:
    return _task(glint, task_id).status in ("success", "failure")


def test_tasks_complete_and_duplicate_messages_run_once(
        api: app.Glint, workers: Workers, ctx: Any, tmp_path: pathlib.Path) -> None:
    workers.start(concurrency=2)
    workers.start(concurrency=2)
    ids = [_create(api, ctx, tmp_path, 0.3) for _ in range(6)]
    for _ in range(3):  # the broker delivers the first task's id four times
        api.executor.submit(ids[0], "test-slow")
    for task_id in ids:
        wait_until(lambda t=task_id: _final(api, t), 60, f"task {task_id}")
    time.sleep(1)  # time for the duplicates to arrive and be dropped
    for task_id in ids:
        task = _task(api, task_id)
        assert (task.status, task.attempts) == ("success", 1), task.message
        assert _lines(tmp_path / f"{task_id}.runs") == ["1"]
        assert _lines(tmp_path / f"{task_id}.done") == ["1"]


def _owner_pid(glint: app.Glint, task_id: str) -> int:
    owner = _task(glint, task_id).lease_owner
    assert owner is not None
    return int(owner.split(":")[1])


def test_a_worker_killed_mid_task_is_replaced_and_the_task_succeeds_once(
        api: app.Glint, workers: Workers, ctx: Any, tmp_path: pathlib.Path) -> None:
    workers.start()
    workers.start()
    task_id = _create(api, ctx, tmp_path, 3.0)
    wait_until(lambda: (tmp_path / f"{task_id}.runs").exists(), 30, "the task to start")
    victim = workers.by_pid(_owner_pid(api, task_id))
    os.killpg(victim.pid, signal.SIGKILL)
    wait_until(lambda: _final(api, task_id), 60, "the task to finish on the other worker")
    task = _task(api, task_id)
    assert (task.status, task.attempts, task.result) == ("success", 2, {"attempt": 2})
    assert _owner_pid(api, task_id) != victim.pid
    assert _lines(tmp_path / f"{task_id}.runs") == ["1", "2"]
    assert _lines(tmp_path / f"{task_id}.done") == ["2"]


def test_a_paused_worker_loses_its_lease_and_its_late_writes_are_refused(
        api: app.Glint, workers: Workers, ctx: Any, tmp_path: pathlib.Path) -> None:
    """SIGSTOP the owner until the reaper hands its task over, then SIGCONT it: a zombie."""
    workers.start()
    workers.start()
    task_id = _create(api, ctx, tmp_path, 3.0)
    wait_until(lambda: (tmp_path / f"{task_id}.runs").exists(), 30, "the task to start")
    zombie = workers.by_pid(_owner_pid(api, task_id))
    os.killpg(zombie.pid, signal.SIGSTOP)
    wait_until(lambda: _final(api, task_id), 60, "the task to finish on the other worker")
    os.killpg(zombie.pid, signal.SIGCONT)
    wait_until(lambda: "was not recorded" in workers.log(zombie), 30,
          "the zombie's result to be refused")
    task = _task(api, task_id)
    assert (task.status, task.result, task.attempts) == ("success", {"attempt": 2}, 2)
    assert f"task {task_id}: lease 1 lost; its success was not recorded" in workers.log(zombie)


def test_cancel_a_running_task_through_the_api(api: app.Glint, workers: Workers, ctx: Any,
                                              tmp_path: pathlib.Path) -> None:
    from glint.api.app import create_app
    from tests.unit.api.support import PROJECT_A, TestClient

    workers.start()
    with TestClient(create_app(api)) as client:
        body = {"type": "test-slow", "input": {"seconds": 30, "record_dir": str(tmp_path)}}
        task_id = client.post("/v2/tasks", json=body, headers=PROJECT_A).json()["id"]
        wait_until(lambda: (tmp_path / f"{task_id}.runs").exists(), 30, "the task to start")
        response = client.post(f"/v2/tasks/{task_id}/actions/cancel", headers=PROJECT_A)
        assert response.status_code == 202
        wait_until(lambda: _final(api, task_id), 20, "the task to stop")
        shown = client.get(f"/v2/tasks/{task_id}", headers=PROJECT_A).json()
    assert (shown["status"], shown["message"]) == ("failure", runner_mod.CANCELLED)
    assert _lines(tmp_path / f"{task_id}.done") == []


def test_a_worker_told_to_stop_takes_no_new_task(
        api: app.Glint, workers: Workers, ctx: Any, tmp_path: pathlib.Path) -> None:
    """SIGTERM while a task runs: it finishes there, and a task published after the signal,
    with a slot free, waits for another worker."""
    stopping = workers.start(concurrency=2)
    running = _create(api, ctx, tmp_path, 4.0)
    wait_until(lambda: (tmp_path / f"{running}.runs").exists(), 30, "the task to start")
    stopping.send_signal(signal.SIGTERM)
    time.sleep(0.2)  # the signal is handled
    later = _create(api, ctx, tmp_path, 0.1)
    time.sleep(2.5)  # the consumer's poll ends within this; before, it took the task here
    assert _task(api, later).status == "pending"
    assert not (tmp_path / f"{later}.runs").exists()
    assert stopping.wait(30) == 0, workers.log(stopping)
    assert (_task(api, running).status, _owner_pid(api, running)) == ("success", stopping.pid)
    other = workers.start()
    wait_until(lambda: _final(api, later), 30, "the task on another worker")
    assert (_task(api, later).status, _owner_pid(api, later)) == ("success", other.pid)


def test_a_transient_error_is_retried_through_the_broker_and_frees_the_slot(
        api: app.Glint, workers: Workers, ctx: Any, tmp_path: pathlib.Path) -> None:
    """One slot: the retry is published with a countdown (on RabbitMQ's quorum queues, its
    native delayed delivery), and the slot runs another task meanwhile."""
    workers.env["GLINT_TASK_RETRY_BACKOFF"] = "3"
    worker = workers.start(concurrency=1)
    flaky = api.tasks.create(ctx, "test-flaky", {"fail_times": 1,
                                                 "record_dir": str(tmp_path)}).id
    wait_until(lambda: _task(api, flaky).retries == 1, 30, "the first run to fail")
    quick = _create(api, ctx, tmp_path, 0.1)
    wait_until(lambda: _final(api, quick), 30, "the other task, while the first waits")
    assert _task(api, flaky).status == "pending"
    wait_until(lambda: _final(api, flaky), 30, "the retry")
    task = _task(api, flaky)
    assert (task.status, task.result, task.retries) == ("success", {"attempt": 2}, 1)
    runs = _lines(tmp_path / f"{flaky}.runs")
    assert runs == ["1", str(worker.pid), "2", str(worker.pid)]
    log = workers.log(worker)
    assert "direct exchange" not in log and "enable -E" not in log


@pytest.mark.parametrize("broker", ["rabbitmq"], indirect=True)
def test_celerys_own_line_names_the_glint_task_and_how_it_ended(
        api: app.Glint, workers: Workers, ctx: Any, tmp_path: pathlib.Path) -> None:
    """One grep of a task id finds Celery's line for its run, which says how the glint task
    ended and never "succeeded" for a failure; a duplicate message says it was not claimed."""
    workers.env["GLINT_TASK_RETRY_LIMIT"] = "0"  # the transient error fails the task
    worker = workers.start(concurrency=1)
    failed = api.tasks.create(ctx, "test-flaky", {"fail_times": 1,
                                                  "record_dir": str(tmp_path)}).id
    done = _create(api, ctx, tmp_path, 0.1)
    for task_id in (failed, done):
        wait_until(lambda t=task_id: _final(api, t), 30, f"task {task_id}")
    api.executor.submit(done, "test-slow")  # a duplicate: found taken, dropped

    def celerys(task_id: str) -> list[str]:
        return [line for line in workers.log(worker).splitlines()
                if task_id in line and "glint.run_task[" in line and " ran in " in line]

    wait_until(lambda: len(celerys(done)) == 2, 30, "Celery's line for the duplicate")
    (line,) = celerys(failed)
    assert f"glint.run_task[{failed}." in line, line
    assert (f"glint task {failed} (test-flaky) ended failure: the server is busy" in line), line
    first, duplicate = celerys(done)
    assert f"glint task {done} (test-slow) ended success" in first, first
    assert f"glint task {done} not claimed: it already ended success" in duplicate, duplicate
    assert not [line for line in workers.log(worker).splitlines() if "succeeded" in line]


@pytest.mark.parametrize("broker", ["redis"], indirect=True)
@pytest.mark.parametrize("pool", ["threads", "prefork"])
def test_a_workers_health_port_and_its_log_lines(
        api: app.Glint, workers: Workers, ctx: Any, tmp_path: pathlib.Path, pool: str) -> None:
    """The worker answers /healthcheck and /metrics on its own port, broker included, the
    tasks its prefork children ran counted too; its log names the request that created each
    task it runs, so one grep follows a request across nodes."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    worker = workers.start(1, pool, True, "--health-port", str(port))
    request = urllib.request.Request(f"http://127.0.0.1:{port}/healthcheck",
                                     headers={"Accept": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        report = json.loads(response.read())
    assert report["status"] == "ok", report
    assert {"database", "store", "broker", "reaper"} <= set(report["checks"])
    task_id = _create(api, ctx, tmp_path, 0.1)
    wait_until(lambda: _final(api, task_id), 30, "the task")
    lines = [line for line in workers.log(worker).splitlines() if task_id in line]
    assert any(f"[{ctx.request_id} project={ctx.project_id} task={task_id}(test-slow)]: "
               "task ended: success" in line for line in lines), lines
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        scraped = response.read().decode()
    assert 'glint_tasks_finished_total{status="success",type="test-slow"} 1.0' in scraped
    assert 'glint_task_duration_seconds_count{type="test-slow"} 1.0' in scraped


def test_a_worker_started_without_its_database_waits_for_it(
        api: app.Glint, database_url: str, broker: tuple[str, str], ctx: Any,
        tmp_path: pathlib.Path) -> None:
    """The worker reaches PostgreSQL through a proxy that hangs up until it is turned on."""
    url = sa.make_url(database_url)
    with TcpProxy((url.host or "127.0.0.1", url.port or 5432), enabled=False) as proxy:
        proxied = url.set(host="127.0.0.1", port=proxy.port)
        workers = Workers(tmp_path, proxied.render_as_string(hide_password=False), *broker)
        try:
            worker = workers.start(ready=False)

            def logged(text: str) -> bool:
                assert worker.poll() is None, workers.log(worker)  # it must not give up
                return text in workers.log(worker)

            wait_until(lambda: logged("waiting for it before taking tasks"), 30, "a warning")
            time.sleep(2.5)  # a retry fails meanwhile
            assert not logged("ready.")
            proxy.enable()
            wait_until(lambda: logged("ready."), 30, "the worker to take tasks")
            task_id = _create(api, ctx, tmp_path, 0.1)
            wait_until(lambda: _final(api, task_id), 30, "the task")
            assert _task(api, task_id).status == "success"
        finally:
            workers.stop()
