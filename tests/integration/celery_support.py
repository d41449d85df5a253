"""The celery executor's test rig: real `glint worker` processes on RabbitMQ or Redis, sharing
a PostgreSQL database with an in-process glint that publishes (tests/integration/test_celery*.py).

The ``test-slow`` and ``test-flaky`` scripts come from tests/fixtures/entrypoints, which is on
the workers' PYTHONPATH only. Leases are short (3 s) so that a killed worker's task is reaped
within seconds. The fixtures here (``database_url``, ``broker``, ``workers``, ``api``) are
imported by the modules that use them.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import pathlib
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pytest

from glint import app
from glint.scripts.registry import Registry
from tests.conftest import MakeGlint
from tests.integration.conftest import _reset_schema
from tests.tools import unavailable

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


def require_reachable(url: str) -> None:
    import kombu

    try:
        with kombu.Connection(url, connect_timeout=3) as connection:
            connection.ensure_connection(max_retries=1)
    except Exception as exc:
        message = f"broker {url} is unreachable: {exc}"
        unavailable(message)


@pytest.fixture(params=sorted(BROKERS))
def broker(request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    """(broker URL, a queue of this test's own), the queue deleted afterwards."""
    with own_queue(BROKERS[request.param], "glint-it") as queue:
        yield BROKERS[request.param], queue


@contextlib.contextmanager
def own_queue(url: str, prefix: str) -> Iterator[str]:
    """A queue name of this test's own on the reachable broker ``url``, deleted afterwards."""
    import kombu

    require_reachable(url)
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


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
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

    wait_until(all_final, timeout, what)
    return shown
