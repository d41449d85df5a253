"""``glint task list|show|cancel|retry``: an operator's view of tasks, as admin, on the
database itself (no server), with click's CliRunner on a migrated SQLite database."""

from __future__ import annotations

import datetime
import json
import pathlib
import socket
import uuid
from typing import Any

import pytest

from glint.db import attempts, engine, models
from glint.tasks import runner, states
from tests.unit.cli_support import database, run, workdir  # noqa: F401  (workdir is a fixture)

IMPORT_INPUT = {"import_from": "http://192.0.2.1/disk.raw", "import_from_format": "raw",
                "image_properties": {"name": "again"}}


@pytest.fixture
def db(workdir: pathlib.Path) -> Any:  # noqa: F811
    assert run("db", "upgrade").exit_code == 0
    database_ = engine.Database(database(workdir))
    yield database_
    database_.dispose()


def add(db: engine.Database, **fields: Any) -> models.Task:
    values: dict[str, Any] = {
        "id": str(uuid.uuid4()), "type": "import", "status": states.PENDING,
        "owner": "project-a", "input": IMPORT_INPUT, "message": "",
        "context": {"project_id": fields.get("owner", "project-a"), "user_id": "user-a",
                    "roles": ["member"], "request_id": "req-original"}, **fields}
    task = models.Task(**values)
    with db.session() as session:
        session.add(task)
    return task


def get(db: engine.Database, task_id: str) -> models.Task:
    with db.reader() as session:
        task = session.get(models.Task, task_id)
        assert task is not None
        return task


def test_list_is_an_aligned_table_with_filters(db: engine.Database) -> None:
    old = models.utcnow() - datetime.timedelta(hours=3)
    running = add(db, status=states.PROCESSING, attempts=1, lease_owner="node-1:42:abc",
                  lease_expires_at=models.utcnow())
    failed = add(db, status=states.FAILURE, owner="project-b", created_at=old,
                 message="The worker\nwas lost")
    result = run("task", "list")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["ID", "TYPE", "STATUS", "PROJECT", "CREATED", "UPDATED",
                                "ATTEMPTS", "WORKER", "MESSAGE"]
    assert [line.split()[0] for line in lines[1:]] == [running.id, failed.id]  # newest first
    status_column = lines[0].index("STATUS")  # aligned: each row's status starts there
    assert {line[status_column:].split()[0] for line in lines[1:]} == {"processing", "failure"}
    assert "node-1:42:abc" in lines[1] and "1/3" in lines[1]
    assert lines[2].endswith("The worker was lost")
    assert _ids("task", "list", "--status", "failure") == [failed.id]
    assert _ids("task", "list", "--project", "project-a") == [running.id]
    assert _ids("task", "list", "--older-than", "2h") == [failed.id]
    assert _ids("task", "list", "--older-than", "1h30m", "--type", "export") == []
    bad = run("task", "list", "--older-than", "2 hours")
    assert bad.exit_code == 2 and "--older-than" in bad.output


def _ids(*args: str) -> list[str]:
    result = run(*args)
    assert result.exit_code == 0, result.output
    if result.stdout.strip() == "no tasks":
        return []
    return [line.split()[0] for line in result.stdout.splitlines()[1:]]


def test_show_is_json_with_the_lease(db: engine.Database) -> None:
    expiry = datetime.datetime(2030, 1, 2, 3, 4, 5)
    task = add(db, status=states.PROCESSING, attempts=2, lease_owner="node-1:42:abc",
               lease_expires_at=expiry)
    with db.session() as session:
        attempts.start(session, task.id, 1, "node-0:7:dead", datetime.datetime(2030, 1, 1))
        attempts.end(session, task.id, attempts.LOST, "its worker was lost",
                     datetime.datetime(2030, 1, 1, 0, 5))
        attempts.start(session, task.id, 2, "node-1:42:abc", datetime.datetime(2030, 1, 1, 0, 6))
    result = run("task", "show", task.id)
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert shown["id"] == task.id and shown["input"] == IMPORT_INPUT
    assert (shown["attempts"], shown["max_attempts"], shown["lease_owner"],
            shown["lease_expires_at"]) == (2, 3, "node-1:42:abc", "2030-01-02T03:04:05Z")
    assert shown["cancel_requested"] is False
    assert [(r["number"], r["worker"], r["ended_at"], r["outcome"], r["message"])
            for r in shown["history"]] == [
        (1, "node-0:7:dead", "2030-01-01T00:05:00Z", "lost", "its worker was lost"),
        (2, "node-1:42:abc", None, None, "")]
    missing = run("task", "show", str(uuid.uuid4()))
    assert missing.exit_code == 1 and "not found" in missing.output


def test_cancel_fails_a_pending_task_and_asks_a_running_one(db: engine.Database) -> None:
    pending = add(db)
    result = run("task", "cancel", pending.id)
    assert (result.exit_code, result.stdout.strip()) == (0, f"task {pending.id}: cancelled")
    assert (get(db, pending.id).status, get(db, pending.id).message) == (
        states.FAILURE, runner.CANCELLED)
    running = add(db, status=states.PROCESSING, attempts=1, lease_owner="node-1:42:abc",
                  lease_expires_at=models.utcnow() + datetime.timedelta(minutes=1))
    result = run("task", "cancel", running.id)
    assert result.exit_code == 0 and "cancel requested; still processing" in result.stdout
    assert get(db, running.id).cancel_requested
    again = run("task", "cancel", pending.id)
    assert again.exit_code == 1 and "already failure" in again.output


def test_retry_creates_a_new_task_like_the_failed_one_and_runs_it(db: engine.Database) -> None:
    with socket.socket() as probe:  # a loopback port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    task_input = {**IMPORT_INPUT, "import_from": f"http://127.0.0.1:{closed}/disk.raw"}
    failed = add(db, status=states.FAILURE, message="it broke", input=task_input)
    result = run("task", "retry", failed.id, GLINT_IMPORT_ALLOWED_HOSTS='["127.0.0.1"]')
    assert result.exit_code == 0, result.output
    new_id, ended = result.stdout.splitlines()
    created = get(db, new_id)
    assert new_id != failed.id and get(db, failed.id).status == states.FAILURE
    assert (created.type, created.input, created.owner, created.user_id, created.request_id) == (
        "import", task_input, "project-a", "user-a", "req-original")
    # The thread executor (the default) ran it here, to its end: nothing answers that port.
    assert created.status == states.FAILURE
    assert ended.startswith(f"task {new_id}: failure (")


def test_retry_refuses_what_cannot_run_again(db: engine.Database) -> None:
    done = add(db, status=states.SUCCESS)
    result = run("task", "retry", done.id)
    assert result.exit_code == 1 and "only a failed task is retried" in result.stderr
    bound = add(db, status=states.FAILURE, bound_to="node-1:42:abc")
    assert "credentials" in run("task", "retry", bound.id).output
    image = models.Image(id=str(uuid.uuid4()), status="queued", owner="project-a",
                         created_at=models.utcnow() - datetime.timedelta(minutes=5))
    with db.session() as session:
        session.add(image)
    importing = add(db, status=states.FAILURE, type="api_image_import", image_id=image.id)
    refused = run("task", "retry", importing.id)
    assert refused.exit_code == 1 and "import the image again" in refused.output
    assert f"POST /v2/images/{image.id}/import" in refused.output


def test_help_says_retry_makes_a_new_task() -> None:
    result = run("task", "retry", "--help")
    assert result.exit_code == 0 and "Create a new task" in result.stdout
    assert "new task's id" in result.stdout
    assert run("task", "--help").output.count("cancel") >= 1
