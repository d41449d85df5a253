"""glint installed the way a deployer installs it: the wheel, in a clean virtual environment,
with only the extras the two-node guide names (``glint[postgresql,celery]``), none of the test
tools. ``glint scripts`` must list every built-in script ``ok`` (and exit 0), ``glint serve``
must answer and ``glint worker`` must consume, on PostgreSQL and RabbitMQ.

Twice: with the newest releases pip finds, and with every direct dependency at the lower bound
pyproject.toml declares (``lowest``), so a bound glint does not actually work with fails here.
A missing dependency the test extra happens to pull in (``cryptography``, once) fails here too.
"""

from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable, Iterator

import httpx
import pytest
from packaging.requirements import Requirement

from tests.acceptance.conftest import free_port
from tests.integration.celery_support import BROKERS, own_queue
from tests.integration.conftest import _reset_schema

ROOT = pathlib.Path(__file__).resolve().parents[2]
EXTRAS = ("postgresql", "celery")  # docs/how-to/two-node.md: pip install 'glint[postgresql,celery]'
BUILT_IN_SCRIPTS = {"import", "api_image_import", "export", "clone"}


def lower_bounds(pyproject: pathlib.Path = ROOT / "pyproject.toml") -> list[str]:
    """``name==bound`` for each runtime and deployment-extra requirement with a ``>=`` bound."""
    project = tomllib.loads(pyproject.read_text())["project"]
    declared = [*project["dependencies"],
                *(r for extra in EXTRAS for r in project["optional-dependencies"][extra])]
    pins = {}
    for line in declared:
        requirement = Requirement(line)
        for spec in requirement.specifier:
            if spec.operator == ">=":
                pins[requirement.name] = f"{requirement.name}=={spec.version}"
    return sorted(pins.values())


def test_every_dependency_has_a_lower_bound() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = {Requirement(line).name for line in project["dependencies"]}
    assert {pin.partition("==")[0] for pin in lower_bounds()} >= names


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    out = tmp_path_factory.mktemp("wheel")
    _run(sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(out),
         str(ROOT))
    (built,) = out.glob("glint-*.whl")
    return built


@pytest.fixture(params=["newest", "lowest"])
def installed(request: pytest.FixtureRequest, wheel: pathlib.Path,
              tmp_path: pathlib.Path) -> pathlib.Path:
    """The bin directory of a fresh virtual environment with ``glint[postgresql,celery]``."""
    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", str(venv))
    command = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet",
               f"{wheel}[{','.join(EXTRAS)}]"]
    if request.param == "lowest":
        constraints = tmp_path / "lowest.txt"
        constraints.write_text("\n".join(lower_bounds()) + "\n")
        command += ["--constraint", str(constraints)]
    _run(*command)
    return venv / "bin"


@pytest.fixture
def deployment_env(tmp_path: pathlib.Path, postgres_url: str) -> Iterator[dict[str, str]]:
    _reset_schema(postgres_url)
    with own_queue(BROKERS["rabbitmq"], "glint-install") as queue:
        env = {key: value for key, value in os.environ.items()
               if not key.startswith("GLINT_") and key not in ("PYTHONPATH", "VIRTUAL_ENV")}
        env.update({"GLINT_DATABASE_URL": postgres_url, "GLINT_DATA_DIR": str(tmp_path / "data"),
                    "GLINT_EXECUTOR": "celery", "GLINT_BROKER_URL": BROKERS["rabbitmq"],
                    "GLINT_TASK_DEFAULT_QUEUE": queue})
        yield env


def test_deployment_install_serves_and_works(installed: pathlib.Path,
                                             deployment_env: dict[str, str],
                                             tmp_path: pathlib.Path) -> None:
    env = deployment_env
    listed = _run(str(installed / "glint"), "scripts", env=env, cwd=tmp_path)
    rows = {cells[0]: "ok" if "ok" in cells[1:4] else "broken"
            for cells in (line.split() for line in listed.stdout.splitlines()[1:])}
    assert {name: rows.get(name) for name in BUILT_IN_SCRIPTS} == dict.fromkeys(
        BUILT_IN_SCRIPTS, "ok"), listed.stdout

    _run(str(installed / "glint"), "db", "upgrade", env=env, cwd=tmp_path)
    port = free_port()
    serve = _start([str(installed / "glint"), "serve", "--port", str(port)], env,
                   tmp_path / "serve.log")
    try:
        _wait(lambda: _answers(f"http://127.0.0.1:{port}/versions"), serve, tmp_path / "serve.log")
    finally:
        assert _stop(serve) == 0, (tmp_path / "serve.log").read_text()

    worker = _start([str(installed / "glint"), "worker", "--concurrency", "1"], env,
                    tmp_path / "worker.log")
    try:
        _wait(lambda: b"ready." in (tmp_path / "worker.log").read_bytes(), worker,
              tmp_path / "worker.log")
    finally:
        assert _stop(worker) == 0, (tmp_path / "worker.log").read_text()


def _run(*command: str, env: dict[str, str] | None = None,
         cwd: pathlib.Path | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True)
    assert result.returncode == 0, f"{' '.join(command)}:\n{result.stdout}\n{result.stderr}"
    return result


def _start(command: list[str], env: dict[str, str], log: pathlib.Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:  # run outside the checkout, so only the installed glint loads
        return subprocess.Popen(command, env=env, cwd=log.parent, stdout=out,
                                stderr=subprocess.STDOUT)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def _wait(ready: Callable[[], bool], process: subprocess.Popen[bytes], log: pathlib.Path) -> None:
    deadline = time.monotonic() + 60
    while not ready():
        assert process.poll() is None, f"exited {process.returncode}:\n{log.read_text()}"
        assert time.monotonic() < deadline, f"not ready in 60 s:\n{log.read_text()}"
        time.sleep(0.2)


def _stop(process: subprocess.Popen[bytes]) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        process.wait(30)
    return process.returncode
