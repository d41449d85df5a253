"""Leases on PostgreSQL and SQLite: racing claims and concurrent reapers handle a task once."""

from __future__ import annotations

import datetime
import threading
import types
from typing import Any

from glint import app
from glint.context import RequestContext
from glint.db import attempts, leases, models
from glint.scripts.registry import Registry
from glint.tasks.runner import Requeued
from tests.conftest import MakeGlint

TASKS = 20


def _expired_tasks(glint: app.Glint, ctx: RequestContext) -> list[str]:
    glint.executor.shutdown()
    ids = [glint.tasks.create(ctx, "s", {}).id for _ in range(TASKS)]
    for task_id in ids:
        with glint.db.session() as session:
            assert leases.claim(session, task_id, "lost", 30, models.utcnow()) is not None
    with glint.db.session() as session:
        for task_id in ids:
            session.get(models.Task, task_id).lease_expires_at = datetime.datetime(2000, 1, 1)  # type: ignore[union-attr]
    return ids


def _race(count: int, target: Any) -> list[Any]:
    results: list[Any] = []
    barrier = threading.Barrier(count)

    def run() -> None:
        barrier.wait()
        results.append(target())

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_concurrent_reapers_requeue_each_task_once(make_glint: MakeGlint,
                                                   ctx: RequestContext) -> None:
    glint = make_glint(registry=Registry.of({"s": types.SimpleNamespace(main=lambda c: {})}))
    ids = _expired_tasks(glint, ctx)
    batches: list[list[Requeued]] = _race(4, lambda: glint.runner.reap(limit=TASKS))
    requeued = [item.task_id for batch in batches for item in batch]
    assert sorted(requeued) == sorted(ids)  # every task once, none twice
    with glint.db.reader() as session:
        rows = session.query(models.Task).filter(models.Task.id.in_(ids)).all()
    assert {(r.status, r.lease_token) for r in rows} == {("pending", 2)}


def test_racing_claims_on_an_expired_lease_have_one_winner(make_glint: MakeGlint,
                                                           ctx: RequestContext) -> None:
    glint = make_glint(registry=Registry.of({"s": types.SimpleNamespace(main=lambda c: {})}))
    (task_id, *_rest) = _expired_tasks(glint, ctx)

    def claim() -> leases.Lease | None:
        with glint.db.session() as session:
            return leases.claim(session, task_id, threading.current_thread().name, 30,
                                models.utcnow())

    won = [lease for lease in _race(6, claim) if lease is not None]
    assert len(won) == 1 and won[0].token == 2
    with glint.db.reader() as session:  # the claim opened its run, the winner's only
        runs = [(run.number, run.worker) for run in attempts.of(session, task_id)]
    assert runs == [(1, "lost"), (2, won[0].owner)]


def test_a_run_ends_with_its_attempt_closed(make_glint: MakeGlint, ctx: RequestContext) -> None:
    """The end and its attempt (one statement on PostgreSQL, two on SQLite)."""
    def fail(c: Any) -> None:
        raise ValueError("no")

    glint = make_glint(registry=Registry.of({"s": types.SimpleNamespace(main=lambda c: {}),
                                             "f": types.SimpleNamespace(main=fail)}))
    done, failed = (glint.tasks.create(ctx, kind, {}).id for kind in ("s", "f"))
    with glint.db.reader() as session:
        runs = {task_id: [(run.number, run.worker, run.outcome, run.ended_at is not None,
                           run.message) for run in attempts.of(session, task_id)]
                for task_id in (done, failed)}
        statuses = {task_id: session.get(models.Task, task_id).status  # type: ignore[union-attr]
                    for task_id in (done, failed)}
    owner = glint.runner.owner
    assert statuses == {done: "success", failed: "failure"}
    assert runs[done] == [(1, owner, "success", True, "")]
    ((number, worker, outcome, ended, message),) = runs[failed]
    assert (number, worker, outcome, ended) == (1, owner, "failure", True)
    assert "ValueError: no" in message


def test_one_statement_commits_on_its_own_and_leaves_the_pool_transactional(
        make_glint: MakeGlint, ctx: RequestContext) -> None:
    """On PostgreSQL a task's insert, claim and end run in autocommit (no BEGIN/COMMIT round
    trips): each is committed once its statement returns, and the pooled connection goes back
    to transactions (a failed write through ``connection()`` still rolls back)."""
    glint = make_glint(registry=Registry.of({"s": types.SimpleNamespace(main=lambda c: {})}))
    glint.executor.shutdown()
    task_id = glint.tasks.create(ctx, "s", {}).id
    with glint.db.one_statement() as connection:
        claimed = leases.claim_row(connection, task_id, "a", 30, models.utcnow())
        assert claimed is not None
        if glint.db.is_sqlite:  # SQLite: one transaction (two statements), seen at its end
            return
        with glint.db.reader() as session:  # another connection sees it already
            assert session.get(models.Task, task_id).status == "processing"  # type: ignore[union-attr]
            assert [run.worker for run in attempts.of(session, task_id)] == ["a"]
    try:
        with glint.db.connection() as connection:
            leases.write_row(connection, claimed[0], message="not kept")
            raise RuntimeError("fail after the write")
    except RuntimeError:
        pass
    with glint.db.reader() as session:
        assert session.get(models.Task, task_id).message == ""  # type: ignore[union-attr]
