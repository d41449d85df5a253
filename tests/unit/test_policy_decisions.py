"""Policy decisions are remembered, and forgotten when the rules change."""

from __future__ import annotations

import os
import pathlib

import pytest

from glint import policy
from glint.context import RequestContext
from glint.settings import Settings

MEMBER = RequestContext(user_id="u1", project_id="p1", roles=("member",))
READER = RequestContext(user_id="u2", project_id="p1", roles=("reader",))
OWN = {"project_id": "p1"}


def _counting(rules: policy.Policy, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    asked: list[str] = []
    enforce = rules.enforcer.enforce

    def counted(rule: str, *args: object, **kwargs: object) -> object:
        asked.append(rule)
        return enforce(rule, *args, **kwargs)

    monkeypatch.setattr(rules.enforcer, "enforce", counted)
    return asked


def _policy_file(path: pathlib.Path, text: str, mtime: float) -> None:
    path.write_text(text)
    os.utime(path, (mtime, mtime))  # oslo.policy notices a change by the file's mtime


def test_the_same_question_is_answered_from_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    rules = policy.Policy.from_settings(Settings(), ["import"])
    asked = _counting(rules, monkeypatch)
    assert rules.check(MEMBER, "add_task:import", OWN)
    assert rules.check(MEMBER, "add_task:import", OWN)
    assert not rules.check(READER, "add_task:import", OWN)  # other credentials: asked again
    assert not rules.check(READER, "add_task:import", OWN)
    assert rules.check(MEMBER, "add_task:import", {"project_id": "p1", "task_id": "t"})
    assert asked == ["add_task:import"] * 3


def test_a_changed_policy_file_is_obeyed_at_once(tmp_path: pathlib.Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "policy.yaml"
    _policy_file(path, '"add_task:import": "role:member"\n', 1_000_000)
    rules = policy.Policy.from_settings(Settings(policy_file=path), ["import"])
    assert rules.check(MEMBER, "add_task:import", OWN)
    _policy_file(path, '"add_task:import": "role:admin"\n', 2_000_000)
    assert not rules.check(MEMBER, "add_task:import", OWN)


def test_nothing_is_remembered_when_a_rule_asks_elsewhere(
        tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An http: check can answer differently each time (never evaluated here: its rule is not
    asked, and its address is loopback that nothing listens on)."""
    path = tmp_path / "policy.yaml"
    _policy_file(path, '"add_image": "http://127.0.0.2:9/check"\n', 1_000_000)
    rules = policy.Policy.from_settings(Settings(policy_file=path), ["import"])
    asked = _counting(rules, monkeypatch)
    assert rules.check(MEMBER, "add_task:import", OWN)
    assert rules.check(MEMBER, "add_task:import", OWN)
    assert asked == ["add_task:import"] * 2
