"""The celery executor with real `glint worker` processes, on RabbitMQ and on Redis, with PostgreSQL.

Workers are subprocesses in their own process groups; the test side is an in-process glint
whose executor publishes to the same broker. The ``test-slow`` script comes from
tests/fixtures/entrypoints, which is on the workers' PYTHONPATH only. Leases are short (3 s)
so that a killed worker's task is reaped within seconds.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import pathlib
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from glint import app
from glint.db import models
from glint.scripts.registry import Registry
from glint.tasks import runner as runner_mod
from tests.conftest import MakeGlint
from tests.integration.conftest import _reset_schema
from tests.integration.tcpproxy import TcpProxy
from tests.tools import in_ci

BIN = pathlib.Path(sys.executable).parent
FIXTURES = pathlib.Path(__file__).resolve().parents[1] / "fixtures" / "entrypoints"
BROKERS = {"rabbitmq": "amqp://guest:guest@127.0.0.1:5672//", "redis": "redis://127.0.0.1:6379/7"}
# Short leases so that a killed worker's task is reaped within seconds, and a message a killed
# worker had reserved (Redis gives it back only after the visibility timeout) is re-published.
LEASE = {"task_lease": 3.0, "task_heartbeat": 0.5, "reaper_interval": 0.5,
         "task_republish_after": 5.0}


def _test_script(name: str) -> Any:
    spec = importlib.util.spec_from_file_location(
        f"glint_test_scripts_{name}", FIXTURES / "glint_test_scripts" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SLOW = _test_script("slow")
FLAKY = _test_script("flaky")


@pytest.fixture
def database_url(postgres_url: str) -> str:
    """PostgreSQL only: several processes share the database."""
    _reset_schema(postgres_url)
    return postgres_url


def _reachable(url: str) -> None:
    import kombu

    try:
        with kombu.Connection(url, connect_timeout=3) as connection:
            connection.ensure_connection(max_retries=1)
    except Exception as exc:
        message = f"broker {url} is unreachable: {exc}"
        if in_ci():
            pytest.fail(message, pytrace=False)
        pytest.skip(message)


@pytest.fixture(params=sorted(BROKERS))
def broker(request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    """(broker URL, a queue of this test's own), the queue deleted afterwards."""
    with own_queue(BROKERS[request.param], "glint-it") as queue:
        yield BROKERS[request.param], queue


@contextlib.contextmanager
def own_queue(url: str, prefix: str) -> Iterator[str]:
    """A queue name of this test's own on the reachable broker ``url``, deleted afterwards."""
    import kombu

    _reachable(url)
    queue = f"{prefix}-{secrets.token_hex(4)}"
    yield queue
    with kombu.Connection(url, connect_timeout=3) as connection:
        kombu.Queue(queue, kombu.Exchange(queue, type="direct"), routing_key=queue)(
            connection.default_channel).delete()


class Workers:
    def __init__(self, tmp: pathlib.Path, database_url: str, broker_url: str, queue: str) -> None:
        self.tmp = tmp
        self.env = dict(os.environ)
        self.env.pop("GLINT_CONFIG", None)
        self.env.update({
            "GLINT_DATABASE_URL": database_url, "GLINT_BROKER_URL": broker_url,
            "GLINT_TASK_DEFAULT_QUEUE": queue, "GLINT_DATA_DIR": str(tmp / "data"),
            "GLINT_NOTIFIER": "log", "PYTHONPATH": f"{FIXTURES}{os.pathsep}"
            f"{self.env.get('PYTHONPATH', '')}",
            **{f"GLINT_{k.upper()}": str(v) for k, v in LEASE.items()}})
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self, concurrency: int = 1, pool: str = "threads",
              ready: bool = True, *args: str) -> subprocess.Popen[bytes]:
        """Start a worker and (``ready``) wait until it consumes."""
        log = self.tmp / f"worker-{len(self.processes)}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [str(BIN / "glint"), "worker", "--concurrency", str(concurrency),
                 "--pool", pool, *args],
                env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        self.processes.append(process)
        deadline = time.monotonic() + 30
        while ready and b"ready." not in log.read_bytes():
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, f"worker not ready in 30 s:\n{log.read_text()}"
            time.sleep(0.1)
        return process

    def log(self, process: subprocess.Popen[bytes]) -> str:
        return (self.tmp / f"worker-{self.processes.index(process)}.log").read_text()

    def by_pid(self, pid: int) -> subprocess.Popen[bytes]:
        (process,) = [p for p in self.processes if p.pid == pid]
        return process

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                # These workers have nothing left to finish, and a warm shutdown (SIGTERM)
                # waits for the consumer's next poll, up to 10 s on RabbitMQ.
                os.killpg(process.pid, signal.SIGKILL)
        for process in self.processes:
            process.wait()


@pytest.fixture
def workers(tmp_path: pathlib.Path, database_url: str,
            broker: tuple[str, str]) -> Iterator[Workers]:
    started = Workers(tmp_path, database_url, *broker)
    yield started
    started.stop()


@pytest.fixture
def api(make_glint: MakeGlint, broker: tuple[str, str]) -> app.Glint:
    """The API side: publishes to the workers' queue, runs nothing itself."""
    url, queue = broker
    return make_glint(registry=Registry.of({"test-slow": SLOW, "test-flaky": FLAKY}),
                      executor="celery",
                      broker_url=url, task_default_queue=queue, **LEASE)


def _task(glint: app.Glint, task_id: str) -> models.Task:
    with glint.db.reader() as session:
        task = session.get(models.Task, task_id)
        assert task is not None
        return task


def _wait(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def wait_all_final(api: Any, tasks: Iterable[str], timeout: float,
                   what: str) -> dict[str, dict[str, Any]]:
    """Wait until every task shows success or failure through the API client ``api``; their
    bodies, as last shown."""
    shown: dict[str, dict[str, Any]] = {}

    def all_final() -> bool:
        for task_id in tasks:
            if task_id not in shown:
                task = api.get(f"/v2/tasks/{task_id}").json()
                if task["status"] not in ("success", "failure"):
                    return False
                shown[task_id] = task
        return True

    _wait(all_final, timeout, what)
    return shown


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
        _wait(lambda t=task_id: _final(api, t), 60, f"task {task_id}")
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
    _wait(lambda: (tmp_path / f"{task_id}.runs").exists(), 30, "the task to start")
    victim = workers.by_pid(_owner_pid(api, task_id))
    os.killpg(victim.pid, signal.SIGKILL)
    _wait(lambda: _final(api, task_id), 60, "the task to finish on the other worker")
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
    _wait(lambda: (tmp_path / f"{task_id}.runs").exists(), 30, "the task to start")
    zombie = workers.by_pid(_owner_pid(api, task_id))
    os.killpg(zombie.pid, signal.SIGSTOP)
    _wait(lambda: _final(api, task_id), 60, "the task to finish on the other worker")
    os.killpg(zombie.pid, signal.SIGCONT)
    _wait(lambda: "was not recorded" in workers.log(zombie), 30,
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
        _wait(lambda: (tmp_path / f"{task_id}.runs").exists(), 30, "the task to start")
        response = client.post(f"/v2/tasks/{task_id}/actions/cancel", headers=PROJECT_A)
        assert response.status_code == 202
        _wait(lambda: _final(api, task_id), 20, "the task to stop")
        shown = client.get(f"/v2/tasks/{task_id}", headers=PROJECT_A).json()
    assert (shown["status"], shown["message"]) == ("failure", runner_mod.CANCELLED)
    assert _lines(tmp_path / f"{task_id}.done") == []


def test_a_worker_told_to_stop_takes_no_new_task(
        api: app.Glint, workers: Workers, ctx: Any, tmp_path: pathlib.Path) -> None:
    """SIGTERM while a task runs: it finishes there, and a task published after the signal,
    with a slot free, waits for another worker."""
    stopping = workers.start(concurrency=2)
    running = _create(api, ctx, tmp_path, 4.0)
    _wait(lambda: (tmp_path / f"{running}.runs").exists(), 30, "the task to start")
    stopping.send_signal(signal.SIGTERM)
    time.sleep(0.2)  # the signal is handled
    later = _create(api, ctx, tmp_path, 0.1)
    time.sleep(2.5)  # the consumer's poll ends within this; before, it took the task here
    assert _task(api, later).status == "pending"
    assert not (tmp_path / f"{later}.runs").exists()
    assert stopping.wait(30) == 0, workers.log(stopping)
    assert (_task(api, running).status, _owner_pid(api, running)) == ("success", stopping.pid)
    other = workers.start()
    _wait(lambda: _final(api, later), 30, "the task on another worker")
    assert (_task(api, later).status, _owner_pid(api, later)) == ("success", other.pid)


def test_a_transient_error_is_retried_through_the_broker_and_frees_the_slot(
        api: app.Glint, workers: Workers, ctx: Any, tmp_path: pathlib.Path) -> None:
    """One slot: the retry is published with a countdown (on RabbitMQ's quorum queues, its
    native delayed delivery), and the slot runs another task meanwhile."""
    workers.env["GLINT_TASK_RETRY_BACKOFF"] = "3"
    worker = workers.start(concurrency=1)
    flaky = api.tasks.create(ctx, "test-flaky", {"fail_times": 1,
                                                 "record_dir": str(tmp_path)}).id
    _wait(lambda: _task(api, flaky).retries == 1, 30, "the first run to fail")
    quick = _create(api, ctx, tmp_path, 0.1)
    _wait(lambda: _final(api, quick), 30, "the other task, while the first waits")
    assert _task(api, flaky).status == "pending"
    _wait(lambda: _final(api, flaky), 30, "the retry")
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
        _wait(lambda t=task_id: _final(api, t), 30, f"task {task_id}")
    api.executor.submit(done, "test-slow")  # a duplicate: found taken, dropped

    def celerys(task_id: str) -> list[str]:
        return [line for line in workers.log(worker).splitlines()
                if task_id in line and "glint.run_task[" in line and " ran in " in line]

    _wait(lambda: len(celerys(done)) == 2, 30, "Celery's line for the duplicate")
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
    _wait(lambda: _final(api, task_id), 30, "the task")
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

            _wait(lambda: logged("waiting for it before taking tasks"), 30, "a warning")
            time.sleep(2.5)  # a retry fails meanwhile
            assert not logged("ready.")
            proxy.enable()
            _wait(lambda: logged("ready."), 30, "the worker to take tasks")
            task_id = _create(api, ctx, tmp_path, 0.1)
            _wait(lambda: _final(api, task_id), 30, "the task")
            assert _task(api, task_id).status == "success"
        finally:
            workers.stop()
