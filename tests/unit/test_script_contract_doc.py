"""docs/script-contract.md as a script author follows it: its snippets match the example
package, its steps come in an order that works, and the store methods it lists exist."""

from __future__ import annotations

import inspect
import pathlib
import re
import tomllib

from glint.scripts import contract as base

ROOT = pathlib.Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "script-contract.md").read_text(encoding="utf-8")
EXAMPLE = ROOT / "examples" / "glint-verify"


def _section(title: str) -> str:
    start = DOC.index(f"### {title}")
    return DOC[start:DOC.index("\n### ", start + 1)]


def _blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", text, re.S)


def test_the_pyproject_shown_is_the_examples_whole_file() -> None:
    shown = _blocks(_section("1. Declare the task type"), "toml")
    assert shown == [(EXAMPLE / "pyproject.toml").read_text(encoding="utf-8")]
    parsed = tomllib.loads(shown[0])
    # What a package needs besides the entry point: a build backend, and its tests' settings.
    assert parsed["build-system"]["build-backend"] == "setuptools.build_meta"
    assert parsed["tool"]["pytest"]["ini_options"]["testpaths"] == ["tests"]


def test_the_package_is_installed_before_its_tests_run() -> None:
    commands = [line for block in _blocks(DOC, "sh") for line in block.splitlines()]
    install = commands.index(".venv/bin/pip install ./examples/glint-verify")
    test = commands.index("cd examples/glint-verify && ../../.venv/bin/pytest")
    assert install < test


def test_the_store_methods_listed_are_the_stores_and_read_is_an_iterator() -> None:
    row = next(line for line in DOC.splitlines() if line.startswith("| `store_api` |"))
    listed = set(re.findall(r"`(\w+)\(", row)) - {"isinstance", "copy", "write", "commit",
                                                 "abort"}
    assert listed == {"writer", "read", "size", "delete", "local_path"}
    for name in listed:
        assert inspect.isfunction(getattr(base.Store, name)), name
    assert "iterator of `bytes` chunks" in row
    assert "Iterator[bytes]" in str(inspect.signature(base.Store.read).return_annotation)
