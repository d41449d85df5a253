"""`glint serve` in a subprocess, a local HTTP server to import from, and the real clients."""

from __future__ import annotations

import contextlib
import dataclasses
import http.server
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.acceptance

BIN = pathlib.Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclasses.dataclass
class Server:
    url: str
    data_dir: pathlib.Path
    process: subprocess.Popen[bytes]
    log: pathlib.Path

    def stop(self, timeout: float = 20) -> int:
        """SIGTERM, as a service manager would; returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout)
        return self.process.returncode


def start_glint(tmp: pathlib.Path, **settings: str) -> Server:
    env = dict(os.environ)
    env.update({"GLINT_DATA_DIR": str(tmp / "data"),
                "GLINT_IMPORT_ALLOWED_HOSTS": '["127.0.0.1"]', "GLINT_NOTIFIER": "log"})
    env.update({f"GLINT_{k.upper()}": v for k, v in settings.items()})
    env.pop("GLINT_CONFIG", None)
    subprocess.run([str(BIN / "glint"), "db", "upgrade"], env=env, check=True,
                   capture_output=True)
    port = free_port()
    log = tmp / "glint.log"
    with log.open("wb") as out:  # the child keeps its own copy of the descriptor
        process = subprocess.Popen(
            [str(BIN / "glint"), "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env, stdout=out, stderr=subprocess.STDOUT)
    server = Server(f"http://127.0.0.1:{port}", tmp / "data", process, log)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"glint serve exited: {log.read_text()}")
        try:
            if httpx.get(f"{server.url}/versions", timeout=1).status_code == 200:
                return server
        except httpx.TransportError:
            time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"glint serve did not answer in 30 s: {log.read_text()}")


# The default identity of an admin's glint (glance and the dashboard's browser send no roles).
ADMIN_ROLES = '["admin", "member", "reader"]'


@contextlib.contextmanager
def admin_glint(tmp: pathlib.Path) -> Iterator[Server]:
    """A `glint serve` whose requests without identity headers are an admin's."""
    server = start_glint(tmp, default_roles=ADMIN_ROLES)
    try:
        yield server
    finally:
        server.stop()


def glint_cli(server: Server, *args: str) -> subprocess.CompletedProcess[str]:
    """`glint` on the same settings (database, store) as ``server``."""
    env = {**os.environ, "GLINT_DATA_DIR": str(server.data_dir),
           "GLINT_IMPORT_ALLOWED_HOSTS": '["127.0.0.1"]', "GLINT_NOTIFIER": "noop"}
    env.pop("GLINT_CONFIG", None)
    return subprocess.run([str(BIN / "glint"), *args], env=env, capture_output=True, text=True,
                          timeout=120)


def wait_for(server: Server, task_id: str, *statuses: str) -> dict[str, object]:
    """The task once its status is one of ``statuses`` (60 s at the most)."""
    deadline = time.monotonic() + 60
    while True:
        task: dict[str, object] = httpx.get(f"{server.url}/v2/tasks/{task_id}", timeout=10).json()
        if task["status"] in statuses:
            return task
        assert time.monotonic() < deadline, task
        time.sleep(0.1)


@pytest.fixture(scope="module")
def glint_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_glint(tmp_path_factory.mktemp("glint"))
    yield server
    server.stop()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@dataclasses.dataclass
class FileServer:
    url: str
    root: pathlib.Path

    def add(self, name: str, data: bytes) -> str:
        (self.root / name).write_bytes(data)
        return f"{self.url}/{name}"


@pytest.fixture(scope="module")
def file_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FileServer]:
    """A plain HTTP server on loopback serving a directory, as a user's web server would."""
    root = tmp_path_factory.mktemp("www")

    def handler(*args: object) -> _QuietHandler:
        return _QuietHandler(*args, directory=str(root))  # type: ignore[arg-type]

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)  # type: ignore[arg-type]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield FileServer(f"http://127.0.0.1:{httpd.server_address[1]}", root)
    httpd.shutdown()
    httpd.server_close()


@dataclasses.dataclass
class GlanceCli:
    """python-glanceclient's `glance` command, pointed at glint."""

    url: str
    home: pathlib.Path

    def __call__(self, *args: str, check: bool = True,
                 close_stdin: bool = False) -> subprocess.CompletedProcess[str]:
        """Run ``glance``; ``close_stdin`` for commands that would upload a non-tty stdin
        (``image-create`` without ``--file`` treats /dev/null as 0 bytes of data)."""
        glance = shutil.which("glance", path=str(BIN)) or "glance"
        env = dict(os.environ, HOME=str(self.home))
        for name in list(env):
            if name.startswith("OS_"):
                del env[name]
        result = subprocess.run(
            [glance, "--os-image-url", self.url, "--os-auth-token", "any-token", *args],
            env=env, capture_output=True, text=True, timeout=120,
            preexec_fn=_close_stdin if close_stdin else None)
        if check and result.returncode != 0:
            raise AssertionError(f"glance {' '.join(args)} failed ({result.returncode}):\n"
                                 f"{result.stdout}\n{result.stderr}")
        return result

    def table(self, *args: str, close_stdin: bool = False) -> dict[str, str]:
        """Run a command that prints a Property/Value table and return it as a dict."""
        return parse_table(self(*args, close_stdin=close_stdin).stdout)


def _close_stdin() -> None:
    os.close(0)


def parse_table(text: str) -> dict[str, str]:
    rows: dict[str, str] = {}
    key = None
    for line in text.splitlines():
        if not line.startswith("|"):
            continue
        cells = [c.strip() for c in line.strip("|").split("|", 1)]
        if len(cells) != 2 or cells == ["Property", "Value"]:
            continue
        if cells[0]:
            key = cells[0]
            rows[key] = cells[1]
        elif key is not None:  # a wrapped value continues on the next line
            rows[key] += cells[1]
    return rows


@pytest.fixture
def glance(glint_server: Server, tmp_path: pathlib.Path) -> GlanceCli:
    return GlanceCli(glint_server.url, tmp_path)


@pytest.fixture
def sdk(glint_server: Server) -> Iterator[Any]:
    """An openstacksdk Connection to glint as its default project (any token will do)."""
    from keystoneauth1 import session, token_endpoint
    from openstack import connection

    auth = token_endpoint.Token(glint_server.url, "any-token")
    conn = connection.Connection(session=session.Session(auth=auth),
                                 image_endpoint_override=glint_server.url,
                                 image_api_version="2")
    yield conn
    conn.close()
