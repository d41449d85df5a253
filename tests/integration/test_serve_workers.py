"""`glint serve --workers 2`: two API workers under one supervisor, sharing a database and store.

The supervisor runs the start-up recovery once, before it starts the API workers. An API worker
that dies is started again without it: its siblings' running tasks and uploads are left alone,
and the dead one's task is the reaper's once its lease expires. glint runs in a subprocess on
loopback; which API worker does what is read from /proc (the supervisor's children, who holds
a file open), the access log (process ids) and the tasks' lease owners (``host:pid:serve id``).
"""

from __future__ import annotations

import contextlib
import http.server
import os
import pathlib
import re
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import httpx
import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from glint import app, cli
from glint import settings as settings_mod
from glint.context import RequestContext
from glint.db import leases, migrate, models
from glint.tasks import runner as runner_mod
from tests.acceptance.conftest import BIN, Server, free_port
from tests.unit.api.support import PROJECT_A

T = TypeVar("T")
DATA = os.urandom(256 * 1024)  # what the source serves; an import gets it in two halves
UPLOAD = os.urandom(4 * 1024 * 1024)  # an upload sends it in two halves
LEASE = {"task_lease": "2", "task_heartbeat": "0.5", "reaper_interval": "0.5"}
STARTED = re.compile(r"\[(\d+)\] uvicorn\.error: Application startup complete")
# An access line names the process, then the request it served (glint.logcontext).
ACCESS = r"\[(\d+)\] uvicorn\.access(?: \[[^\]]*\])?: "
SERVED = re.compile(ACCESS + r".* \"GET /versions HTTP/1.1\" 200")


class Source:
    """Image data on loopback: half at once, the rest when the path's gate (if any) opens."""

    def __init__(self) -> None:
        self.gates: dict[str, threading.Event] = {}
        gates = self.gates

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Length", str(len(DATA)))
                self.end_headers()
                half = len(DATA) // 2
                with contextlib.suppress(OSError):  # a reader killed meanwhile
                    self.wfile.write(DATA[:half])
                    self.wfile.flush()
                    gate = gates.get(self.path)
                    if gate is not None:
                        gate.wait(60)
                    self.wfile.write(DATA[half:])

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def url(self, name: str, gated: bool = False) -> str:
        if gated:
            self.gates[f"/{name}.raw"] = threading.Event()
        return f"http://127.0.0.1:{self._server.server_address[1]}/{name}.raw"

    def open(self, name: str) -> None:
        self.gates[f"/{name}.raw"].set()

    def open_all(self) -> None:
        for gate in self.gates.values():
            gate.set()

    def close(self) -> None:
        self.open_all()
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def source() -> Iterator[Source]:
    started = Source()
    yield started
    started.close()


SERVING: list[subprocess.Popen[bytes]] = []


@pytest.fixture(autouse=True)
def _no_server_left() -> Iterator[None]:
    yield
    for process in SERVING:  # a failed test's server: its whole process group goes
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
    SERVING.clear()


def _serve(tmp: pathlib.Path, database_url: str, **settings: str) -> Server:
    """``glint serve --workers 2`` in its own process group; returns once both API workers
    have started and it answers."""
    env = {k: v for k, v in os.environ.items() if k != "GLINT_CONFIG"}
    env.update({"GLINT_DATABASE_URL": database_url, "GLINT_DATA_DIR": str(tmp / "data"),
                "GLINT_IMPORT_ALLOWED_HOSTS": '["127.0.0.1"]', "GLINT_NOTIFIER": "log",
                "GLINT_STORE": "filesystem"})
    env.update({f"GLINT_{k.upper()}": v for k, v in settings.items()})
    port = free_port()
    log = tmp / f"glint-{port}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(BIN / "glint"), "serve", "--migrate", "--host", "127.0.0.1", "--port",
             str(port), "--workers", "2"],
            env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    SERVING.append(process)
    server = Server(f"http://127.0.0.1:{port}", tmp / "data", process, log)
    _wait_for(lambda: len(_api_workers(server)) == 2
              and httpx.get(f"{server.url}/versions", timeout=2).status_code == 200,
              "both API workers to start", server)
    return server


def _wait_for(probe: Callable[[], T | None], what: str, server: Server,
              timeout: float = 30) -> T:
    """Poll ``probe`` until it returns something true; that is returned."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(httpx.TransportError):
            found = probe()
            if found:
                return found
        assert server.process.poll() is None, server.log.read_text()
        assert time.monotonic() < deadline, f"timed out waiting for {what}:\n{server.log.read_text()}"
        time.sleep(0.05)


def _children(pid: int) -> set[int]:
    found: set[int] = set()
    with contextlib.suppress(FileNotFoundError):
        for thread in pathlib.Path(f"/proc/{pid}/task").iterdir():
            found |= {int(child) for child in (thread / "children").read_text().split()}
    return found


def _api_workers(server: Server) -> set[int]:
    """The live API workers: children of the supervisor whose app started."""
    started = {int(pid) for pid in STARTED.findall(server.log.read_text())}
    return _children(server.process.pid) & started


def _holder(workers: set[int], path: pathlib.Path) -> int | None:
    """The API worker that has ``path`` open."""
    for pid in workers:
        with contextlib.suppress(OSError):
            for fd in pathlib.Path(f"/proc/{pid}/fd").iterdir():
                with contextlib.suppress(OSError):
                    if os.readlink(fd) == str(path):
                        return pid
    return None


def _task(database_url: str, task_id: str) -> dict[str, Any]:
    engine = sa.create_engine(database_url, poolclass=sa.NullPool)
    try:
        with engine.connect() as conn:
            row = conn.execute(sa.text(
                "SELECT status, message, lease_owner, attempts FROM tasks WHERE id = :id"),
                {"id": task_id}).one()
    finally:
        engine.dispose()
    return dict(row._mapping)


def _runner_pid(task: dict[str, Any]) -> int:
    return int(str(task["lease_owner"]).split(":")[1])


def _clients(server: Server) -> dict[int, httpx.Client]:
    """A client for each API worker: the one that took its (keep-alive) connection, as the
    access log line of its first request says."""
    clients: dict[int, httpx.Client] = {}

    def one_more() -> bool:
        client = httpx.Client(base_url=server.url, headers=PROJECT_A, timeout=10)
        response = client.get("/versions")
        port = response.extensions["network_stream"].get_extra_info("client_addr")[1]
        line = re.compile(ACCESS + rf"127\.0\.0\.1:{port} ")
        pid = int(_wait_for(lambda: line.search(server.log.read_text()), "its access log line",
                            server).group(1))
        if pid in clients:
            client.close()
        clients[pid] = clients.get(pid, client)
        return len(clients) == 2

    _wait_for(one_more, "a connection to each API worker", server)
    return clients


def _create_import(server: Server, url: str, name: str,
                   client: httpx.Client | None = None) -> str:
    """The API worker that takes the request runs the task: ``client``'s, or any."""
    if client is None:
        with httpx.Client(base_url=server.url, headers=PROJECT_A, timeout=10) as any_worker:
            return _create_import(server, url, name, any_worker)
    created = client.post("/v2/tasks", json={"type": "import", "input": {
        "import_from": url, "import_from_format": "raw", "image_properties": {"name": name}}})
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


def _running_in(server: Server, database_url: str, task_id: str) -> int:
    task = _wait_for(lambda: (t := _task(database_url, task_id))["status"] == "processing" and t,
                     f"task {task_id} to run", server)
    return _runner_pid(task)


def _final(server: Server, database_url: str, task_id: str) -> dict[str, Any]:
    return _wait_for(lambda: (t := _task(database_url, task_id))["status"] in (
        "success", "failure") and t, f"task {task_id} to end", server)


def _unfinished(server: Server, image_id: str) -> pathlib.Path:
    store = server.data_dir / "images"
    return _wait_for(lambda: next(store.glob(f".tmp-{image_id}-*"), None),
                     f"an unfinished write of {image_id}", server).resolve()


def _check_active_images(api: httpx.Client) -> dict[str, dict[str, Any]]:
    """Every active image's bytes are all there; returns the images by name."""
    images = api.get("/v2/images", params={"limit": 100}).json()["images"]
    for image in images:
        if image["status"] == "active":
            data = api.get(f"/v2/images/{image['id']}/file").content
            assert len(data) == image["size"], image
    return {image["name"]: image for image in images}


class Upload(threading.Thread):
    """``PUT /v2/images/{id}/file`` of UPLOAD: the first half, then the rest once released."""

    def __init__(self, server: Server, image_id: str) -> None:
        super().__init__(daemon=True)
        self.url = f"{server.url}/v2/images/{image_id}/file"
        self.release = threading.Event()
        self.status: int | None = None

    def run(self) -> None:
        def body() -> Iterator[bytes]:
            yield UPLOAD[:len(UPLOAD) // 2]
            self.release.wait(60)
            yield UPLOAD[len(UPLOAD) // 2:]

        headers = {**PROJECT_A, "Content-Type": "application/octet-stream"}
        self.status = httpx.put(self.url, content=body(), headers=headers, timeout=60).status_code


def test_two_api_workers_serve_and_run_tasks_and_stop_on_sigterm(
        database_url: str, tmp_path: pathlib.Path, source: Source,
        monkeypatch: pytest.MonkeyPatch) -> None:
    temporary = tmp_path / "tmp"  # where the supervisor makes its metrics directory
    temporary.mkdir()
    monkeypatch.setenv("TMPDIR", str(temporary))
    server = _serve(tmp_path, database_url)
    try:
        workers = _api_workers(server)
        assert server.process.pid not in workers

        def served_by_both() -> bool:
            httpx.get(f"{server.url}/versions", timeout=5)  # a new connection each time
            return {int(pid) for pid in SERVED.findall(server.log.read_text())} == workers

        _wait_for(served_by_both, "requests served by both API workers", server)
        task_id = _create_import(server, source.url("disk"), "imported")
        task = _final(server, database_url, task_id)
        assert task["status"] == "success", task
        assert _runner_pid(task) in workers
        with httpx.Client(base_url=server.url, headers=PROJECT_A, timeout=10) as api:
            image = _check_active_images(api)["imported"]
            assert image["status"] == "active" and image["size"] == len(DATA)
        _check_metrics_of_both(server, workers)
        assert [p.name[:14] for p in temporary.iterdir()] == ["glint-metrics-"]
    finally:
        assert server.stop() == 0, server.log.read_text()
    assert not any(_alive(pid) for pid in workers)
    assert not list(temporary.iterdir())  # the metrics directory went with the supervisor
    log = server.log.read_text()
    assert log.count("Application shutdown complete") == 2, log


def _check_metrics_of_both(server: Server, workers: set[int]) -> None:
    """Whichever API worker answers ``/metrics`` counts the task and the requests of both
    (prometheus-client's multiprocess mode)."""
    finished = 'glint_tasks_finished_total{status="success",type="import"} 1.0'
    for _ in range(40):
        with httpx.Client(timeout=10) as fresh:  # a new connection: either API worker
            answer = fresh.get(f"{server.url}/metrics")
        assert answer.status_code == 200 and finished in answer.text, answer.text
        if _served_metrics_pids(server) == workers:
            return
    raise AssertionError(f"/metrics not served by both API workers: {server.log.read_text()}")


def _served_metrics_pids(server: Server) -> set[int]:
    return {int(pid) for pid in re.findall(ACCESS + r"[^\n]*GET /metrics",
                                           server.log.read_text())}


def test_a_burst_of_connections_is_spread_over_the_api_workers(
        database_url: str, tmp_path: pathlib.Path) -> None:
    """Each API worker listens on a socket of its own (SO_REUSEPORT). With one socket shared by
    both, the first to wake accepted most of such a burst (50 of 64 in runs seen)."""
    server = _serve(tmp_path, database_url)
    try:
        workers = _api_workers(server)
        port = int(server.url.rsplit(":", 1)[1])
        burst = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(64)]
        try:
            for conn in burst:
                conn.sendall(b"GET /versions HTTP/1.1\r\nHost: glint\r\n\r\n")
            for conn in burst:
                assert conn.recv(65536).startswith(b"HTTP/1.1 200 "), "no answer"
            ports = {conn.getsockname()[1] for conn in burst}

            def served_by() -> dict[int, int] | None:
                found = {int(client): int(pid) for pid, client in re.findall(
                    ACCESS + r"127\.0\.0\.1:(\d+) ", server.log.read_text())}
                return found if ports <= found.keys() else None

            served = _wait_for(served_by, "the burst's access log lines", server)
            shares = {pid: sum(served[client] == pid for client in ports) for pid in workers}
            assert min(shares.values()) >= len(burst) // 4, shares
        finally:
            for conn in burst:
                conn.close()
    finally:
        assert server.stop() == 0, server.log.read_text()


def test_a_killed_api_worker_is_replaced_and_leaves_its_siblings_work_alone(
        database_url: str, tmp_path: pathlib.Path, source: Source) -> None:
    server = _serve(tmp_path, database_url, **LEASE)
    api = httpx.Client(base_url=server.url, headers=PROJECT_A, timeout=10)
    image_id = api.post("/v2/images", json={
        "name": "uploaded", "disk_format": "raw", "container_format": "bare"}).json()["id"]
    upload = Upload(server, image_id)
    try:
        # An upload under way: the API worker writing it survives.
        upload.start()
        part = _unfinished(server, image_id)
        workers = _api_workers(server)
        survivor = _wait_for(lambda: _holder(workers, part), "the uploading API worker", server)
        (victim,) = workers - {survivor}
        # A long import running in each API worker (a task runs where it was created).
        runs: dict[str, tuple[str, int]] = {}  # task id -> (name, pid of its API worker)
        for pid, client in _clients(server).items():
            task_id = _create_import(server, source.url(f"t{pid}", gated=True), f"t{pid}", client)
            client.close()
            runs[task_id] = (f"t{pid}", pid)
        for task_id, (_, pid) in runs.items():
            assert _running_in(server, database_url, task_id) == pid

        os.kill(victim, signal.SIGKILL)
        replacement = _wait_for(lambda: next(iter(_api_workers(server) - workers), None),
                                "a replacement API worker", server)
        assert _api_workers(server) == {survivor, replacement}
        # The replacement has started (its Glint.start ran): the survivor's work is intact.
        assert part.exists()
        for task_id, (_, pid) in runs.items():
            if pid == survivor:
                task = _task(database_url, task_id)
                assert task["status"] == "processing" and _runner_pid(task) == survivor, task
        upload.release.set()
        for name, _ in runs.values():
            source.open(name)  # the victim's connections are gone: its tasks' re-runs go through
        upload.join(30)
        assert upload.status == 204, server.log.read_text()

        for task_id, (_, pid) in runs.items():
            task = _final(server, database_url, task_id)
            assert task["status"] == "success", task
            # The victim's tasks ran again, re-queued by a reaper once their lease expired.
            assert task["attempts"] == (2 if pid == victim else 1), task
        assert "re-queued: its worker was lost" in server.log.read_text()
        images = _check_active_images(api)
        assert images["uploaded"]["status"] == "active"
        assert api.get(f"/v2/images/{image_id}/file").content == UPLOAD
        for name, _ in runs.values():
            assert images[name]["status"] == "active" and images[name]["size"] == len(DATA)
        assert len(images) == len(runs) + 1  # the victim's first images were discarded
    finally:
        api.close()
        upload.release.set()  # on failure, let everything end
        source.open_all()
        assert server.stop() == 0, server.log.read_text()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # the file's time budget
def test_a_restart_after_a_crash_fails_the_interrupted_task_and_runs_the_pending_one(
        database_url: str, tmp_path: pathlib.Path, source: Source) -> None:
    server = _serve(tmp_path, database_url)
    cut = _create_import(server, source.url("cut", gated=True), "cut")
    _running_in(server, database_url, cut)
    image_id = _wait_for(lambda: _image_of(server, "cut"), "the cut task's image", server)
    part = _unfinished(server, image_id)
    workers = _api_workers(server)
    os.killpg(server.process.pid, signal.SIGKILL)
    server.process.wait(10)
    for pid in workers:
        _wait_until_dead(pid)
    pending = _left_pending(database_url, tmp_path, source.url("waiting"))

    restarted = _serve(tmp_path, database_url)
    try:
        # Failed by the supervisor before it started any API worker.
        task = _task(database_url, cut)
        assert (task["status"], task["message"]) == ("failure", runner_mod.INTERRUPTED)
        assert not part.exists()
        resumed = _final(restarted, database_url, pending)
        assert (resumed["status"], resumed["attempts"]) == ("success", 1), resumed
        with httpx.Client(base_url=restarted.url, headers=PROJECT_A, timeout=10) as api:
            images = _check_active_images(api)
        assert "cut" not in images and images["waiting"]["status"] == "active"
    finally:
        source.open_all()
        assert restarted.stop() == 0, restarted.log.read_text()


def _image_of(server: Server, name: str) -> str | None:
    images = httpx.get(f"{server.url}/v2/images", headers=PROJECT_A,
                       params={"name": name}).json()["images"]
    return str(images[0]["id"]) if images else None


def _alive(pid: int) -> bool:
    try:
        stat = pathlib.Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"  # a zombie is dead, not yet reaped


def _wait_until_dead(pid: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while _alive(pid):
        assert time.monotonic() < deadline, f"process {pid} is still running"
        time.sleep(0.05)


def _left_pending(database_url: str, tmp_path: pathlib.Path, url: str) -> str:
    """A task committed but never handed to an executor (its process died in between)."""
    settings = settings_mod.Settings(database_url=database_url, data_dir=tmp_path / "data",
                                     import_allowed_hosts=("127.0.0.1",))
    glint = app.build(settings, executor="inline")
    glint.executor.shutdown()
    ctx = RequestContext(user_id=PROJECT_A["X-User-Id"], project_id=PROJECT_A["X-Project-Id"],
                         roles=("member", "reader"))
    try:
        return glint.tasks.create(ctx, "import", {
            "import_from": url, "import_from_format": "raw",
            "image_properties": {"name": "waiting"}}).id
    finally:
        glint.close(timeout=0)


def test_the_supervisors_late_recovery_spares_its_api_workers_tasks(
        database_url: str, tmp_path: pathlib.Path) -> None:
    """With the database down at start, the supervisor recovers once it is back, while its API
    workers already run tasks: it fails only those of a dead run (another serve id)."""
    migrate.upgrade(database_url)
    settings = settings_mod.Settings(database_url=database_url, data_dir=tmp_path / "data",
                                     import_allowed_hosts=("127.0.0.1",))
    supervisor = app.build(settings, executor="inline")
    api_worker = app.build(settings, executor="inline", supervisor=supervisor.runner.serve_id)
    try:
        url = "http://127.0.0.1:9/disk.raw"
        live, dead = (_left_pending(database_url, tmp_path, url) for _ in range(2))
        with supervisor.db.session() as session:
            # Another API worker of this serve: another process, the same serve id.
            owner = f"this-host:4242:{api_worker.runner.serve_id}"
            assert leases.claim(session, live, owner, 90, models.utcnow())
            assert leases.claim(session, dead, "other-host:1:deadbeef", 90, models.utcnow())
        supervisor.recover()
        assert _task(database_url, live)["status"] == "processing"
        assert (_task(database_url, dead)["status"], _task(database_url, dead)["message"]) == (
            "failure", runner_mod.INTERRUPTED)
        assert api_worker.runner.serve_id == supervisor.runner.serve_id
        assert api_worker.api_worker and not supervisor.api_worker
        assert api_worker.reaper is not None and api_worker.reaper.republishes
    finally:
        api_worker.close(timeout=0)
        supervisor.close(timeout=0)


@pytest.mark.parametrize("shared", [{"GLINT_STORE": "memory"},
                                    {"GLINT_DATABASE_URL": "sqlite://"}])
def test_api_workers_need_a_database_and_store_they_share(
        shared: dict[str, str], tmp_path: pathlib.Path) -> None:
    result = CliRunner().invoke(cli.main, ["serve", "--workers", "2"], env={
        "GLINT_CONFIG": None, "GLINT_DATA_DIR": str(tmp_path), **shared})
    assert result.exit_code == 2, result.output
    assert "api_workers > 1 needs a database and a store the processes share" in result.output
