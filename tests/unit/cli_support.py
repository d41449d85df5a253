"""Running `glint` commands in tests (tests/unit/test_cli.py and the other CLI tests)."""

from __future__ import annotations

import os
import pathlib

import pytest
from click.testing import CliRunner, Result
from stevedore import extension

from glint import cli


@pytest.fixture(autouse=True)
def workdir(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> pathlib.Path:
    """Run in an empty directory with no GLINT_* settings, so the embedded defaults apply."""
    for name in list(os.environ):
        if name.startswith("GLINT_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    # stevedore remembers each namespace's entry points for the life of the process: start
    # empty, and leave nothing behind for later tests that install entry points of their own.
    monkeypatch.setattr(extension.ExtensionManager, "ENTRY_POINT_CACHE", {})
    return tmp_path


def run(*args: str, **env: str) -> Result:
    return CliRunner().invoke(cli.main, list(args), env=env, catch_exceptions=False)


def database(workdir: pathlib.Path) -> str:
    return f"sqlite:///{(workdir / 'data' / 'glint.db').resolve()}"
