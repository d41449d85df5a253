"""Script discovery through real entry points, including broken third-party packages."""

from __future__ import annotations

import logging
import pathlib
import sys
import textwrap
import types
from collections.abc import Iterator

import pytest
from stevedore import extension

from glint import errors
from glint.scripts import registry

NAMESPACE = "glint.task_scripts"

MODULES = {
    "good_script": '''
        DESCRIPTION = "Says hello"
        INPUT_SCHEMA = {"type": "object", "required": ["name"],
                        "properties": {"name": {"type": "string", "maxLength": 5}}}
        def main(ctx):
            return {"hello": ctx.task_input["name"]}
    ''',
    "crashing_script": "raise ImportError('needs libfoo')\n",
    "mainless_script": "VALUE = 1\n",
    "badschema_script": "INPUT_SCHEMA = {'type': 'no-such-type'}\ndef main(ctx):\n    return {}\n",
    "future_script": "CONTRACT_VERSION = 99\ndef main(ctx):\n    return {}\n",
}
ENTRY_POINTS = {
    "hello": "good_script", "crashy": "crashing_script", "mainless": "mainless_script",
    "badschema": "badschema_script", "future": "future_script",
}


@pytest.fixture
def third_party(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """An installed distribution, as pip would leave it, registering five task types."""
    for name, source in MODULES.items():
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
    dist = tmp_path / "deployer_scripts-1.2.3.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: deployer-scripts\nVersion: 1.2.3\n")
    lines = [f"{name} = {module}" for name, module in ENTRY_POINTS.items()]
    (dist / "entry_points.txt").write_text(f"[{NAMESPACE}]\n" + "\n".join(lines) + "\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # stevedore's entry-point cache
    # ...and the per-process one: an earlier Registry.load() would otherwise hide these.
    monkeypatch.setattr(extension.ExtensionManager, "ENTRY_POINT_CACHE", {})
    yield
    for name in MODULES:
        sys.modules.pop(name, None)


def test_loads_good_scripts_and_reports_broken_ones(third_party: None,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR):
        loaded = registry.Registry.load()
    assert "hello" in loaded.types
    hello = loaded.get("hello")
    assert (hello.package, hello.version, hello.description) == ("deployer-scripts", "1.2.3",
                                                                 "Says hello")
    broken = {b.type: b for b in loaded.broken if b.package == "deployer-scripts"}
    assert set(broken) == {"crashy", "mainless", "badschema", "future"}
    assert "needs libfoo" in broken["crashy"].reason
    assert "main" in broken["mainless"].reason
    assert "not a valid JSON schema" in broken["badschema"].reason
    assert "contract version 99" in broken["future"].reason
    assert all(b.package == "deployer-scripts" for b in broken.values())
    for name in broken:
        assert name not in loaded
        assert any(name in r.getMessage() for r in caplog.records)


def test_input_schema_errors_name_the_place(third_party: None) -> None:
    hello = registry.Registry.load().get("hello")
    hello.check_input({"name": "ok"})
    with pytest.raises(errors.BadRequest, match="'name' is a required property"):
        hello.check_input({})
    with pytest.raises(errors.BadRequest, match="at 'input/name'"):
        hello.check_input({"name": "too long"})


def test_unknown_type_is_not_found() -> None:
    with pytest.raises(errors.NotFound, match="nope"):
        registry.Registry.of({}).get("nope")


def test_validate_refuses_non_callable_validate() -> None:
    bad = types.SimpleNamespace(main=lambda ctx: {}, validate="yes")
    with pytest.raises(errors.ScriptLoadError, match="validate"):
        registry.validate("x", bad, None)


def test_schema_must_be_an_object() -> None:
    bad = types.SimpleNamespace(main=lambda ctx: {}, INPUT_SCHEMA=["not", "a", "schema"])
    with pytest.raises(errors.ScriptLoadError, match="not a JSON object"):
        registry.validate("x", bad, None)
