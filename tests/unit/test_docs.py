"""Every settings example in the README and docs/ loads, as glint would load it at start-up.

A ```toml block is a settings file (``$GLINT_CONFIG``); ``GLINT_NAME=value`` anywhere is an
environment variable. Each must be valid (unknown keys are an error), and the keys of
``task_queues`` and ``executor_routes`` must be task types: a setting written below a table
header in TOML silently becomes one of the table's keys, which only that check notices.
"""

from __future__ import annotations

import os
import pathlib
import re
import tomllib

import pytest

from glint import errors
from glint import settings as settings_mod
from glint.scripts.registry import Registry
from glint.tasks import routing

ROOT = pathlib.Path(__file__).resolve().parents[2]
DOCS = sorted([ROOT / "README.md", *(ROOT / "docs").rglob("*.md")])
TOML_BLOCK = re.compile(r"^```toml\n(.*?)^```", re.M | re.S)
# GLINT_NAME=value, the value quoted or up to the next space or backtick.
ENV_EXAMPLE = re.compile(r"\bGLINT_([A-Z_]+)=('[^']*'|\"[^\"]*\"|[^\s`'\"]*)")
NOT_SETTINGS = {"CONFIG"}  # $GLINT_CONFIG names the file; it is no setting


def _examples(pattern: re.Pattern[str]) -> list[tuple[str, re.Match[str]]]:
    found = []
    for path in DOCS:
        text = path.read_text()
        for match in pattern.finditer(text):
            where = f"{path.relative_to(ROOT)}:{text.count(chr(10), 0, match.start()) + 1}"
            found.append((where, match))
    return found


# A block with a [project...] table is a script package's pyproject.toml, not a settings file.
BLOCKS = _examples(TOML_BLOCK)
PACKAGE_EXAMPLES = [(w, m) for w, m in BLOCKS if re.search(r"^\[project", m[1], re.M)]
TOML_EXAMPLES = [(w, m) for w, m in BLOCKS if not re.search(r"^\[project", m[1], re.M)]
ENV_EXAMPLES = [(where, m) for where, m in _examples(ENV_EXAMPLE) if m[1] not in NOT_SETTINGS]


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in [n for n in os.environ if n.startswith("GLINT_")]:
        monkeypatch.delenv(name)
    return monkeypatch


def _check(settings: settings_mod.Settings) -> None:
    registry = Registry.load()
    routing.check_task_types(settings, [*registry.types, *(b.type for b in registry.broken)])


def test_the_docs_have_settings_examples() -> None:
    assert len(TOML_EXAMPLES) >= 5 and len(ENV_EXAMPLES) >= 6 and PACKAGE_EXAMPLES


@pytest.mark.parametrize(("where", "block"), [(w, m[1]) for w, m in TOML_EXAMPLES],
                         ids=[w for w, _ in TOML_EXAMPLES])
def test_a_toml_example_is_a_valid_settings_file(where: str, block: str,
                                                 clean_env: pytest.MonkeyPatch,
                                                 tmp_path: pathlib.Path) -> None:
    config = tmp_path / "glint.toml"
    config.write_text(block)
    clean_env.setenv(settings_mod.CONFIG_ENV, str(config))
    _check(settings_mod.load())


@pytest.mark.parametrize(("where", "block"), [(w, m[1]) for w, m in PACKAGE_EXAMPLES],
                         ids=[w for w, _ in PACKAGE_EXAMPLES])
def test_a_package_example_is_valid_toml(where: str, block: str) -> None:
    assert tomllib.loads(block)["project"]


@pytest.mark.parametrize(("where", "name", "value"),
                         [(w, m[1], m[2]) for w, m in ENV_EXAMPLES], ids=[w for w, _ in ENV_EXAMPLES])
def test_an_environment_example_is_a_valid_setting(where: str, name: str, value: str,
                                                   clean_env: pytest.MonkeyPatch) -> None:
    assert name.lower() in settings_mod.Settings.model_fields, f"{where}: no setting {name}"
    clean_env.setenv(f"GLINT_{name}", value.strip("'\"") if value[:1] in "'\"" else value)
    _check(settings_mod.load())


def test_a_setting_below_a_table_header_is_caught(clean_env: pytest.MonkeyPatch,
                                                  tmp_path: pathlib.Path) -> None:
    """What the two-node guide once said: notifier became a queue route."""
    config = tmp_path / "glint.toml"
    config.write_text('[task_queues]\nimport = "glint-import"\n\nnotifier = "messaging"\n')
    clean_env.setenv(settings_mod.CONFIG_ENV, str(config))
    with pytest.raises(errors.ConfigurationError,
                       match="task_queues names 'notifier', which is not a task type"):
        _check(settings_mod.load())


def test_revisions_the_docs_show_are_the_newest() -> None:
    from glint.db import migrate

    shown = {(where, m[1]) for where, m in _examples(re.compile(r"\b(?:revision|head) (\d{4}\w*)"))}
    assert shown, "the PostgreSQL guide shows `glint db current`"
    assert {where: revision for where, revision in shown if revision != migrate.head()} == {}
