"""Log lines name the request, project and task they are about (glint.logcontext).

One grep of the request id a client sent finds the lines of the task that request created,
written by the script on the executor's thread, in text and JSON formats alike.
"""

from __future__ import annotations

import io
import json
import logging
import logging.config
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from glint import app, logcontext
from glint.api.app import create_app
from glint.scripts.registry import Registry
from tests.unit.api.support import PROJECT_A, TestClient


class Chatty:
    @staticmethod
    def main(ctx: Any) -> dict[str, Any]:
        ctx.logger.warning("working on it")
        return {}


@pytest.fixture
def captured() -> Iterator[Callable[[str], io.StringIO]]:
    root = logging.getLogger()
    handlers: list[logging.Handler] = []

    def capture(log_format: str) -> io.StringIO:
        config = logcontext.config("warning", log_format)
        stream = io.StringIO()
        handler = logging.StreamHandler(stream)
        handler.addFilter(logcontext.ContextFilter())
        formatter = config["formatters"]["glint"]  # type: ignore[index]
        handler.setFormatter(logcontext.JsonFormatter() if log_format == "json"
                             else logging.Formatter(formatter["format"]))
        root.addHandler(handler)
        handlers.append(handler)
        return stream

    yield capture
    for handler in handlers:
        root.removeHandler(handler)


def _create(make_glint: Callable[..., app.Glint], executor: str) -> str:
    glint = make_glint(registry=Registry.of({"chatty": Chatty}), executor=executor)
    with TestClient(create_app(glint)) as client:
        response = client.post("/v2/tasks", json={"type": "chatty", "input": {}},
                               headers={**PROJECT_A, "X-Openstack-Request-Id": "req-trace-me"})
        assert response.status_code == 201
        task_id: str = response.json()["id"]
        glint.close()
    return task_id


@pytest.mark.parametrize("executor", ["inline", "thread"])
def test_a_scripts_line_names_the_request_that_created_its_task(
        make_glint: Callable[..., app.Glint], captured: Callable[[str], io.StringIO],
        executor: str) -> None:
    stream = captured("text")
    task_id = _create(make_glint, executor)
    lines = [line for line in stream.getvalue().splitlines() if "working on it" in line]
    assert len(lines) == 1
    assert f"glint.task.chatty [req-trace-me project=project-a task={task_id}(chatty)]: " \
           "working on it" in lines[0]


def test_json_lines_carry_the_same_fields(make_glint: Callable[..., app.Glint],
                                          captured: Callable[[str], io.StringIO]) -> None:
    stream = captured("json")
    task_id = _create(make_glint, "inline")
    [line] = [json.loads(line) for line in stream.getvalue().splitlines()
              if "working on it" in line]
    assert {key: line[key] for key in ("request_id", "project_id", "task_id", "task_type",
                                       "level", "logger", "message")} == {
        "request_id": "req-trace-me", "project_id": "project-a", "task_id": task_id,
        "task_type": "chatty", "level": "WARNING", "logger": "glint.task.chatty",
        "message": "working on it"}


def test_the_commands_logging_configuration_loads() -> None:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        for log_format in ("text", "json"):
            logging.config.dictConfig(logcontext.config("info", log_format, processes=True))
            [handler] = root.handlers
            assert any(isinstance(f, logcontext.ContextFilter) for f in handler.filters)
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
