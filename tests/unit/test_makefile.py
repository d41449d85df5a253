"""What `make run` does, read from make's dry run (``make -n``) in a fresh clone's state."""

from __future__ import annotations

import os
import pathlib
import subprocess

ROOT = pathlib.Path(__file__).resolve().parents[2]


def dry_run(tmp_path: pathlib.Path, *args: str) -> list[str]:
    """The commands `make run` would run with no .venv yet (a fresh clone)."""
    env = {k: v for k, v in os.environ.items() if k not in ("HOST", "PORT", "MAKEFLAGS")}
    result = subprocess.run(["make", "-n", "run", f"VENV={tmp_path / 'venv'}", *args],
                            cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    return result.stdout.splitlines()


def serve_line(lines: list[str]) -> str:
    (line,) = [line for line in lines if "glint serve" in line]
    return line


def test_make_run_leaves_host_and_port_to_the_settings(tmp_path: pathlib.Path) -> None:
    # GLINT_BIND_PORT / bind_port in $GLINT_CONFIG apply: no --port overrides them.
    line = serve_line(dry_run(tmp_path))
    assert "--port" not in line and "--host" not in line


def test_make_run_passes_port_and_host_when_given(tmp_path: pathlib.Path) -> None:
    line = serve_line(dry_run(tmp_path, "PORT=9393", "HOST=0.0.0.0"))
    assert line.endswith("glint serve --host 0.0.0.0 --port 9393")


def test_make_run_installs_the_runtime_and_the_glance_client_only(tmp_path: pathlib.Path) -> None:
    installs = [line for line in dry_run(tmp_path) if "pip install" in line]
    assert len(installs) == 1
    assert "-e . python-glanceclient" in installs[0]
    assert "[test]" not in installs[0]
