"""``glint policy`` and the oslo.policy entry points the oslopolicy tools load."""

from __future__ import annotations

import pathlib

import pytest
from click.testing import CliRunner, Result
from oslo_policy import policy as oslo_policy
from stevedore import driver

from glint import cli
from glint import policy as policies


@pytest.fixture(autouse=True)
def workdir(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> pathlib.Path:
    monkeypatch.chdir(tmp_path)
    for name in ("GLINT_CONFIG", "GLINT_POLICY_FILE"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def run(*args: str, **env: str) -> Result:
    return CliRunner().invoke(cli.main, list(args), env=env, catch_exceptions=False)


def _blocks(output: str) -> dict[str, list[str]]:
    """``glint policy``'s output: rule name → [check, description]."""
    blocks = [block.splitlines() for block in output.strip().split("\n\n")]
    return {lines[0]: [line.strip() for line in lines[1:]] for lines in blocks}


def test_glint_policy_lists_every_default() -> None:
    result = run("policy")
    assert result.exit_code == 0, result.output
    rules = _blocks(result.output)
    assert set(rules) >= {d.name for d in policies.rules.defaults()}
    assert rules["publicize_image"] == ["rule:context_is_admin", "Make an image public"]
    assert rules["add_task:import"][0] == "rule:add_task"  # one per installed task type
    assert rules["get_task"][0] == ("rule:context_is_admin or (role:reader and "
                                    "project_id:%(project_id)s)")


def test_glint_policy_effective_shows_the_files_rules(workdir: pathlib.Path) -> None:
    path = workdir / "policy.yaml"
    path.write_text('"add_task:export": "role:admin"\n"add_task:mine": ""\n')
    rules = _blocks(run("policy", "--effective", GLINT_POLICY_FILE=str(path)).output)
    assert rules["add_task:export"][0] == "role:admin  *"
    assert rules["add_task:import"][0] == "rule:add_task"
    assert rules["add_task:mine"] == ["(always)  *", "(not a default rule)"]


def test_glint_policy_effective_with_a_missing_file_is_a_setting_error(
        workdir: pathlib.Path) -> None:
    result = CliRunner().invoke(cli.main, ["policy", "--effective"],
                                env={"GLINT_POLICY_FILE": str(workdir / "nope.yaml")})
    assert result.exit_code == 2
    assert "nope.yaml is not a file" in result.output


def test_the_oslo_policy_entry_points_load() -> None:
    rules = driver.DriverManager("oslo.policy.policies", "glint").driver()
    assert "add_image" in {r.name for r in rules}
    enforcer = driver.DriverManager("oslo.policy.enforcer", "glint",
                                    invoke_on_load=True).driver
    assert isinstance(enforcer, oslo_policy.Enforcer)
    assert "add_task:export" in enforcer.registered_rules
