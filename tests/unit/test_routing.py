"""Per-type routing: ``executor_routes`` sends task types to the executors it names."""

from __future__ import annotations

import os
import pathlib
import threading
import time
import types
from typing import Any

import pytest
from click.testing import CliRunner

from glint import app, cli, errors
from glint import settings as settings_mod
from glint.context import RequestContext
from glint.executors.inline import InlineExecutor
from glint.executors.thread import ThreadExecutor
from glint.scripts.contract import ScriptContext
from glint.scripts.registry import Registry
from glint.tasks import routing
from tests.conftest import MakeGlint


def _recording(seen: dict[str, str]) -> Registry:
    def script(name: str) -> types.SimpleNamespace:
        def main(sctx: ScriptContext) -> dict[str, Any]:
            seen[name] = threading.current_thread().name
            return {}
        return types.SimpleNamespace(main=main)
    return Registry.of({"fast": script("fast"), "slow": script("slow")})


def _wait_done(glint: app.Glint, ctx: RequestContext, task_id: str) -> str:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        status = glint.tasks.get(ctx, task_id).status
        if status in ("success", "failure"):
            return status
        time.sleep(0.02)
    raise AssertionError(f"task {task_id} did not finish")


def test_without_routes_every_type_runs_on_the_default_executor(
        make_glint: MakeGlint, ctx: RequestContext) -> None:
    seen: dict[str, str] = {}
    glint = make_glint(registry=_recording(seen))
    assert list(glint.router.executors) == ["inline"]
    assert isinstance(glint.executor, InlineExecutor)

    for task_type in ("fast", "slow"):
        glint.tasks.create(ctx, task_type, {})

    assert seen == {"fast": threading.current_thread().name,
                    "slow": threading.current_thread().name}


def test_a_routed_type_runs_on_the_executor_its_route_names(make_glint: MakeGlint,
                                                             ctx: RequestContext) -> None:
    seen: dict[str, str] = {}
    glint = make_glint(registry=_recording(seen), executor_routes={"slow": "thread"})
    assert isinstance(glint.router.executor_for("slow"), ThreadExecutor)
    assert glint.router.executor_for("fast") is glint.executor

    fast = glint.tasks.create(ctx, "fast", {})
    slow = glint.tasks.create(ctx, "slow", {})

    assert glint.tasks.get(ctx, fast.id).status == "success"  # inline: done already
    assert _wait_done(glint, ctx, slow.id) == "success"
    assert seen["fast"] == threading.current_thread().name
    assert seen["slow"].startswith("glint-task")


def test_routes_to_the_same_executor_share_one(make_glint: MakeGlint) -> None:
    glint = make_glint(registry=_recording({}), executor="thread",
                       executor_routes={"fast": "inline", "slow": "inline"})
    assert sorted(glint.router.executors) == ["inline", "thread"]
    assert glint.router.executor_for("fast") is glint.router.executor_for("slow")


def test_start_resubmits_pending_tasks_along_their_routes(make_glint: MakeGlint,
                                                          ctx: RequestContext) -> None:
    seen: dict[str, str] = {}
    glint = make_glint(registry=_recording(seen), executor_routes={"slow": "thread"})
    glint.router.shutdown(wait=True)
    slow = glint.tasks.create(ctx, "slow", {})  # stays pending: every executor is closed
    assert glint.tasks.get(ctx, slow.id).status == "pending"
    glint.router.executors["thread"] = ThreadExecutor(glint.runner.run, threads=1)

    glint.start()

    assert _wait_done(glint, ctx, slow.id) == "success"
    assert seen["slow"].startswith("glint-task")


def test_an_unknown_executor_in_a_route_stops_start_up(make_glint: MakeGlint) -> None:
    with pytest.raises(errors.ConfigurationError) as raised:
        make_glint(executor_routes={"export": "no-such-executor"})
    assert raised.value.message.startswith(
        "setting executor_routes (task type 'export') names executor 'no-such-executor', "
        "which is not installed (installed executors: ")
    assert "inline" in raised.value.message and "thread" in raised.value.message


def test_an_unknown_default_executor_stops_start_up(make_glint: MakeGlint) -> None:
    with pytest.raises(errors.ConfigurationError,
                       match=r"^setting executor names executor 'nope', which is not installed"):
        make_glint(executor="nope")


@pytest.mark.parametrize("setting", ["executor_routes", "task_queues"])
def test_a_key_that_is_not_a_task_type_stops_start_up(make_glint: MakeGlint,
                                                       setting: str) -> None:
    # What a setting written below the [task_queues] header of a TOML file turns into.
    with pytest.raises(errors.ConfigurationError) as raised:
        make_glint(registry=_recording({}), **{setting: {"fast": "inline", "notifier": "inline"}})
    assert raised.value.message == (
        f"setting {setting} names 'notifier', which is not a task type (installed task types: "
        "fast, slow); its keys are task types")


def test_a_maintenance_command_loads_no_scripts_and_checks_no_routes(
        make_glint: MakeGlint) -> None:
    glint = make_glint(registry=Registry({}, {}), executor_routes={"verify": "inline"})
    assert glint.router.routes == {"verify": "inline"}


def test_a_router_needs_every_executor_it_routes_to() -> None:
    with pytest.raises(errors.ConfigurationError, match="no executor built for thread"):
        routing.Router({"inline": InlineExecutor(lambda task_id: None)}, {"x": "thread"},
                       "inline")


def test_routes_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GLINT_EXECUTOR_ROUTES", '{"export": "thread", "clone": "inline"}')
    assert settings_mod.Settings().executor_routes == {"export": "thread", "clone": "inline"}


def test_glint_serve_refuses_an_unknown_executor(tmp_path: pathlib.Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("GLINT_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli.main, ["serve", "--migrate"],
                                env={"GLINT_EXECUTOR_ROUTES": '{"import": "celeryish"}'})
    assert result.exit_code == 2
    assert ("setting executor_routes (task type 'import') names executor 'celeryish', which "
            "is not installed") in result.stderr
