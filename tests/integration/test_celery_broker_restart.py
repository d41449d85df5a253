"""No task is lost when the broker goes away mid-run and comes back empty.

The machine's RabbitMQ and Redis are shared with other tests, so this test runs a private Redis
(``redis-server`` on a free loopback port, no persistence): killing it with SIGKILL loses every
message it held, queued or unacknowledged, which is the worst a broker restart can do. `glint
serve` (celery executor) and a `glint worker` use it, with PostgreSQL. Imports are submitted,
the broker is killed while some run and others wait in its queue, a task is submitted during
the outage (503, failed with a message, never left pending), and the broker is started again.
Every task must end: the ones that were running finish under their leases, and the reaper
publishes again the ones whose messages died with the broker. That needs the worker, all of
whose prefetch slots are taken by running tasks when the broker dies (their acks fail), to
notice the lost connection and reconnect; it used to consume nothing after Redis came back
(see ``forget_failed_acks`` in glint/executors/celery.py). Both worker pools are run.

Redis rather than RabbitMQ: a private RabbitMQ node takes seconds to boot and needs its own
Erlang distribution port and cookie; Redis starts in milliseconds. The recovery path (the lease,
the reaper's re-publishing, the claim dropping duplicates) is the same for both brokers.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.acceptance.conftest import Server, free_port, start_glint
from tests.httpserver import LocalServer
from tests.integration.celery_support import (  # noqa: F401  (database_url is a fixture)
    LEASE,
    Workers,
    database_url,
    wait_all_final,
    wait_until,
)
from tests.tools import unavailable
from tests.unit.api.support import PROJECT_A

IMAGES = 12
SIZE = 256 * 1024
DELAY = 1.5  # seconds each source pauses half-way through its body: the outage lands mid-run
QUEUE = "glint-broker-restart"
BROKER_SETTINGS = {"broker_visibility_timeout": "3600", "broker_publish_timeout": "2"}


class PrivateRedis:
    """A redis-server of this test's own, on a free port, that keeps nothing on disk."""

    def __init__(self, tmp: pathlib.Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            message = "redis-server is not installed"
            unavailable(message)
        self.binary = binary
        self.tmp = tmp
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with (self.tmp / "redis.log").open("ab") as log:
            self.process = subprocess.Popen(
                [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no", "--dir", str(self.tmp)],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 10
        while not self._answers():
            assert self.process.poll() is None, (self.tmp / "redis.log").read_text()
            assert time.monotonic() < deadline, "redis-server did not start in 10 s"
            time.sleep(0.05)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False


@pytest.fixture
def redis_broker(tmp_path: pathlib.Path) -> Iterator[PrivateRedis]:
    broker = PrivateRedis(tmp_path)
    broker.start()
    yield broker
    broker.kill()


@pytest.fixture
def serve(tmp_path: pathlib.Path, database_url: str,  # noqa: F811
          redis_broker: PrivateRedis) -> Iterator[Server]:
    server = start_glint(
        tmp_path, database_url=database_url, executor="celery", broker_url=redis_broker.url,
        task_default_queue=QUEUE, store="filesystem", store_path=str(tmp_path / "images"),
        **BROKER_SETTINGS, **{k: str(v) for k, v in LEASE.items()})
    yield server
    server.stop()


@pytest.mark.parametrize("pool", ["threads", "prefork"])
def test_no_task_is_lost_when_the_broker_restarts_empty(
        serve: Server, database_url: str, redis_broker: PrivateRedis,  # noqa: F811
        tmp_path: pathlib.Path, pool: str) -> None:
    workers = Workers(tmp_path, database_url, redis_broker.url, QUEUE)
    workers.env.update({"GLINT_STORE": "filesystem", "GLINT_STORE_PATH": str(tmp_path / "images"),
                        "GLINT_IMPORT_ALLOWED_HOSTS": '["127.0.0.1"]',
                        **{f"GLINT_{k.upper()}": v for k, v in BROKER_SETTINGS.items()}})
    api = httpx.Client(base_url=serve.url, headers=PROJECT_A, timeout=30)
    sources = {f"/image-{i}": os.urandom(SIZE) for i in range(IMAGES)}
    try:
        with LocalServer() as source:
            for path, data in sources.items():
                source.serve(path, data, delay=DELAY)

            def create(path: str) -> httpx.Response:
                return api.post("/v2/tasks", json={"type": "import", "input": {
                    "import_from": source.url(path), "import_from_format": "raw",
                    "image_properties": {"name": path}}})

            workers.start(concurrency=3, pool=pool)
            tasks: dict[str, str] = {}
            for path in sources:
                response = create(path)
                assert response.status_code == 201, response.text
                tasks[response.json()["id"]] = path

            def state() -> dict[str, str]:
                return {t: api.get(f"/v2/tasks/{t}").json()["status"] for t in tasks}

            wait_until(lambda: "processing" in state().values(), 30, "a task to start")
            time.sleep(DELAY / 2)  # into the pause in the middle of the bodies
            redis_broker.kill()
            during = state()
            assert "pending" in during.values(), during  # messages in the broker's queue died

            refused = create("/image-0")  # the API cannot hand a task over: 503, not pending
            assert refused.status_code == 503, refused.text
            assert "broker" in refused.json()["error"]["message"]

            time.sleep(1)
            redis_broker.start()  # empty: queued and unacknowledged messages are gone

            # The worker reconnects within about 2 s and the reaper publishes the lost messages
            # again after task_republish_after (5 s): a stuck worker shows as a timeout here.
            shown = wait_all_final(api, tasks, 30,
                                   "every task to end after the broker came back (none stuck)")
    except BaseException:
        api.close()
        raise
    finally:
        workers.stop()

    failed = {t: s["message"] for t, s in shown.items() if s["status"] != "success"}
    assert not failed, failed  # nothing was wrong with these imports: all of them succeed
    images = api.get("/v2/images", params={"limit": 1000}).json()["images"]
    assert sorted(i["name"] for i in images) == sorted(tasks.values())  # once each
    assert all(i["status"] == "active" and i["size"] == SIZE for i in images)
    tasks_now = api.get("/v2/tasks", params={"limit": 1000}).json()["tasks"]
    refused_task = [t for t in tasks_now if t["id"] not in tasks]
    assert [t["status"] for t in refused_task] == ["failure"]  # the 503 one, not pending
    api.close()
