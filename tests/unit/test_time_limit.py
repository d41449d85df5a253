"""A script that runs too long, or crashes its thread, is contained: its task fails, glint goes on."""

from __future__ import annotations

import threading
import time
import types
from typing import Any

from glint.context import RequestContext
from glint.scripts.contract import ScriptContext
from glint.scripts.registry import Registry
from tests.conftest import MakeGlint


def wait_final(glint: Any, ctx: RequestContext, task_id: str, timeout: float = 10) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        task = glint.tasks.get(ctx, task_id)
        if task.status in ("success", "failure"):
            return task
        time.sleep(0.05)
    raise AssertionError(f"task {task_id} did not finish")


def test_a_script_past_its_limit_is_asked_to_stop(make_glint: MakeGlint,
                                                  ctx: RequestContext) -> None:
    cleaned: list[str] = []

    def main(sctx: ScriptContext) -> dict[str, Any]:
        while not sctx.should_cancel():
            time.sleep(0.02)
        raise RuntimeError("stopped")

    scripts = {"slow": types.SimpleNamespace(main=main, cleanup=lambda c: cleaned.append(c.task_id)),
               "quick": types.SimpleNamespace(main=lambda c: {"ok": True})}
    glint = make_glint(registry=Registry.of(scripts), executor="thread", task_time_limit=0.3)
    slow = glint.tasks.create(ctx, "slow", {})
    task = wait_final(glint, ctx, slow.id)
    assert task.status == "failure"
    assert "time limit of 0.3 seconds" in task.message and "was stopped" in task.message
    assert cleaned == [slow.id]
    quick = glint.tasks.create(ctx, "quick", {})
    assert wait_final(glint, ctx, quick.id).result == {"ok": True}


def test_a_script_that_ignores_its_limit_is_failed_and_fenced(make_glint: MakeGlint,
                                                              ctx: RequestContext) -> None:
    release = threading.Event()
    finished = threading.Event()

    def main(sctx: ScriptContext) -> dict[str, Any]:
        release.wait(10)  # deaf to should_cancel()
        finished.set()
        return {"late": True}

    scripts = {"stuck": types.SimpleNamespace(main=main),
               "quick": types.SimpleNamespace(main=lambda c: {"ok": True})}
    glint = make_glint(registry=Registry.of(scripts), executor="thread", executor_threads=2,
                       task_time_limit=0.2, task_time_limit_grace=0.2, task_heartbeat=0.05,
                       task_lease=5)
    stuck = glint.tasks.create(ctx, "stuck", {})
    task = wait_final(glint, ctx, stuck.id)
    assert task.status == "failure" and "did not stop when asked" in task.message
    quick = glint.tasks.create(ctx, "quick", {})
    assert wait_final(glint, ctx, quick.id).result == {"ok": True}  # glint keeps serving
    release.set()
    assert finished.wait(5)
    time.sleep(0.2)
    late = glint.tasks.get(ctx, stuck.id)
    assert (late.status, late.result) == ("failure", None)  # the runaway's success is refused


def test_a_script_that_exits_fails_its_task_only(make_glint: MakeGlint,
                                                 ctx: RequestContext) -> None:
    def main(sctx: ScriptContext) -> dict[str, Any]:
        raise SystemExit(3)

    glint = make_glint(registry=Registry.of({"exit": types.SimpleNamespace(main=main)}),
                       executor="thread")
    task = wait_final(glint, ctx, glint.tasks.create(ctx, "exit", {}).id)
    assert task.status == "failure" and "SystemExit" in task.message
