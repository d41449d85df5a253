"""The task lifecycle end to end on a migrated database: PostgreSQL and SQLite."""

from __future__ import annotations

import datetime
import threading
from typing import Any

import pytest
import sqlalchemy as sa

from glint import errors
from glint.context import RequestContext
from glint.db import attempts, models
from glint.db import tasks as task_rows
from glint.scripts.contract import ScriptContext
from glint.tasks import runner as runner_mod
from tests.conftest import MakeGlint
from tests.integration.task_support import echo, insert, refuse, registry


def test_success_records_result_and_expiry(make_glint: MakeGlint, ctx: RequestContext) -> None:
    glint = make_glint(registry=registry(echo=echo), task_time_to_live=3)
    task = glint.tasks.create(ctx, "echo", {"value": 7})
    done = glint.tasks.get(ctx, task.id)
    assert (done.status, done.result, done.message) == ("success", {"echo": 7}, "")
    assert done.expires_at is not None
    assert done.expires_at - done.updated_at == datetime.timedelta(hours=3)
    assert done.updated_at >= done.created_at


def test_failure_records_the_scripts_message(make_glint: MakeGlint, ctx: RequestContext) -> None:
    glint = make_glint(registry=registry(refuse=refuse))
    task = glint.tasks.create(ctx, "refuse", {"value": 13})
    done = glint.tasks.get(ctx, task.id)
    assert (done.status, done.result, done.message) == ("failure", None,
                                                        "value 13 is not welcome")
    assert done.expires_at is not None
    assert done.expires_at - done.updated_at == datetime.timedelta(hours=48)


def test_input_not_matching_the_schema_is_refused(make_glint: MakeGlint,
                                                  ctx: RequestContext) -> None:
    glint = make_glint(registry=registry(echo=echo))
    with pytest.raises(errors.BadRequest, match="at 'input/value'"):
        glint.tasks.create(ctx, "echo", {"value": "seven"})
    assert glint.tasks.list(ctx, task_rows.TaskQuery(limit=10)) == []


def test_racing_runners_run_the_script_once(make_glint: MakeGlint, ctx: RequestContext) -> None:
    calls: list[str] = []
    lock = threading.Lock()

    def count(sctx: ScriptContext) -> dict[str, Any]:
        with lock:
            calls.append(sctx.task_id)
        return {}

    glint = make_glint(registry=registry(echo=count))
    tasks = [insert(glint, ctx) for _ in range(8)]
    for task in tasks:
        start = threading.Barrier(2)

        def race(task_id: str = task.id, start: threading.Barrier = start) -> None:
            start.wait()
            glint.runner.run(task_id)

        threads = [threading.Thread(target=race) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    assert sorted(calls) == sorted(t.id for t in tasks)
    assert {glint.tasks.get(ctx, t.id).status for t in tasks} == {"success"}


def test_a_second_run_of_a_finished_task_does_nothing(make_glint: MakeGlint,
                                                      ctx: RequestContext) -> None:
    glint = make_glint(registry=registry(echo=echo))
    task = glint.tasks.create(ctx, "echo", {"value": 1})
    glint.runner.run(task.id)
    events = glint.notifier.inner.events  # type: ignore[attr-defined]
    assert [e.event_type for e in events] == ["task.create", "task.processing", "task.success"]


def test_projects_see_only_their_own_tasks(make_glint: MakeGlint, ctx: RequestContext,
                                           other_ctx: RequestContext,
                                           admin_ctx: RequestContext) -> None:
    glint = make_glint(registry=registry(echo=echo))
    mine = glint.tasks.create(ctx, "echo", {"value": 1})
    theirs = glint.tasks.create(other_ctx, "echo", {"value": 2})
    query = task_rows.TaskQuery(limit=10)
    assert [t.id for t in glint.tasks.list(ctx, query)] == [mine.id]
    assert [t.id for t in glint.tasks.list(other_ctx, query)] == [theirs.id]
    assert {t.id for t in glint.tasks.list(admin_ctx, query)} == {mine.id, theirs.id}
    with pytest.raises(errors.NotFound):
        glint.tasks.get(ctx, theirs.id)
    with pytest.raises(errors.NotFound):
        glint.tasks.get(other_ctx, mine.id)
    assert glint.tasks.get(admin_ctx, mine.id).owner == "project-a"


def test_purge_removes_only_expired_tasks(make_glint: MakeGlint, ctx: RequestContext,
                                          admin_ctx: RequestContext) -> None:
    glint = make_glint(registry=registry(echo=echo))
    now = models.utcnow()
    expired = insert(glint, ctx, status="success", expires_at=now - datetime.timedelta(seconds=1))
    alive = insert(glint, ctx, status="failure", expires_at=now + datetime.timedelta(hours=1))
    pending = insert(glint, ctx)
    with glint.db.session() as session:
        for task in (expired, alive):
            attempts.start(session, task.id, 1, "worker", now)
    assert glint.tasks.purge() == 1
    with glint.db.reader() as session:
        assert [run.task_id for run in session.scalars(sa.select(models.TaskAttempt))] == [
            alive.id]  # a purged task's runs go with it
        assert task_rows.get_any(session, expired.id) is None
        assert task_rows.get_any(session, alive.id) is not None
        assert task_rows.get_any(session, pending.id) is not None
    assert glint.tasks.purge() == 0


def test_recovery_fails_interrupted_tasks_and_returns_pending_ones(
        make_glint: MakeGlint, ctx: RequestContext, admin_ctx: RequestContext) -> None:
    glint = make_glint(registry=registry(echo=echo))
    interrupted = insert(glint, ctx, status="processing")  # it then created the image below
    half_done = glint.images.create(ctx, {"name": "half", "disk_format": "raw",
                                          "container_format": "bare"}, status="importing")
    with glint.store.writer(half_done.id) as writer:
        writer.write(b"partial bytes")
        location = writer.commit()
    with glint.db.session() as session:
        session.get(models.Image, half_done.id).location = location  # type: ignore[union-attr]
    finished = glint.images.create(ctx, {"name": "done"}, status="active")
    with glint.db.session() as session:
        session.get(models.Task, interrupted.id).image_id = half_done.id  # type: ignore[union-attr]
    interrupted_active = insert(glint, ctx, status="processing", image_id=finished.id)
    interrupted_bare = insert(glint, ctx, status="processing")
    pending = insert(glint, ctx)
    succeeded = insert(glint, ctx, status="success", result={"echo": 1},
                       expires_at=models.utcnow() + datetime.timedelta(hours=1))

    assert glint.runner.recover() == [pending.id]

    for task in (interrupted, interrupted_active, interrupted_bare):
        row = glint.tasks.get(ctx, task.id)
        assert (row.status, row.message) == ("failure", runner_mod.INTERRUPTED)
        assert row.expires_at is not None
    with pytest.raises(errors.NotFound):
        glint.images.get(admin_ctx, half_done.id)
    assert location not in set(glint.store.locations())
    assert glint.images.get(ctx, finished.id).status == "active"
    assert glint.tasks.get(ctx, pending.id).status == "pending"
    assert glint.tasks.get(ctx, succeeded.id).status == "success"


def test_start_resubmits_pending_tasks(make_glint: MakeGlint, ctx: RequestContext) -> None:
    glint = make_glint(registry=registry(echo=echo))
    pending = insert(glint, ctx, input={"value": 5})
    glint.start()
    done = glint.tasks.get(ctx, pending.id)
    assert (done.status, done.result) == ("success", {"echo": 5})
