"""Tasks bound to the process holding their credentials (glance-download under
``glint serve --workers N``): two glints on one database stand for two sibling API workers."""

from __future__ import annotations

import datetime
import os
import socket
import types

import pytest

from glint import app
from glint.context import RequestContext
from glint.db import leases, models
from glint.scripts.registry import Registry
from glint.tasks import binding
from glint.tasks import runner as runner_mod
from tests.conftest import MakeGlint

NOW = datetime.datetime(2026, 12, 7, 12, 0)


@pytest.fixture
def siblings(make_glint: MakeGlint) -> tuple[app.Glint, app.Glint]:
    """The API worker that took the request (its executor shut: the task waits in its queue)
    and a sibling on the same database."""
    registry = Registry.of({"s": types.SimpleNamespace(main=lambda ctx: {"ran": True})})
    owner, sibling = make_glint(registry=registry), make_glint(registry=registry)
    owner.executor.shutdown()
    return owner, sibling


def row(glint: app.Glint, task_id: str) -> models.Task:
    with glint.db.reader() as session:
        task = session.get(models.Task, task_id)
        assert task is not None
        return task


def test_a_sibling_leaves_a_bound_task_to_the_process_holding_it(
        siblings: tuple[app.Glint, app.Glint], ctx: RequestContext) -> None:
    owner, sibling = siblings
    task_id = owner.tasks.create(ctx, "s", {}, bound=True).id
    assert row(owner, task_id).bound_to == owner.runner.owner
    # What a sibling does with another's pending task: its reaper republishes stale ones, its
    # start-up resubmits pending ones; each ends in run(), which must not claim it.
    assert sibling.runner.stale_pending(older_than=0) == []
    assert sibling.runner.pending() == []
    sibling.runner.run(task_id)
    assert (row(owner, task_id).status, row(owner, task_id).attempts) == ("pending", 0)
    assert owner.runner.pending() == [task_id]
    owner.runner.run(task_id)
    done = row(owner, task_id)
    assert (done.status, done.result, done.lease_owner) == (
        "success", {"ran": True}, owner.runner.owner)


def test_a_bound_task_whose_process_is_gone_fails_naming_why(
        siblings: tuple[app.Glint, app.Glint], ctx: RequestContext,
        monkeypatch: pytest.MonkeyPatch) -> None:
    owner, sibling = siblings
    task_id = owner.tasks.create(ctx, "s", {}, bound=True).id
    monkeypatch.setattr(binding, "LIVE", binding.LIVE - {owner.runner.owner})
    assert sibling.runner.stale_pending(older_than=0) == []
    failed = row(sibling, task_id)
    assert (failed.status, failed.message) == ("failure", runner_mod.ORPHANED)


def test_a_bound_task_whose_lease_expired_is_failed_not_requeued(
        siblings: tuple[app.Glint, app.Glint], ctx: RequestContext) -> None:
    owner, sibling = siblings
    task_id = owner.tasks.create(ctx, "s", {}, bound=True).id
    with owner.db.session() as session:
        assert leases.claim(session, task_id, owner.runner.owner, 30, models.utcnow())
        session.get(models.Task, task_id).lease_expires_at = datetime.datetime(2000, 1, 1)  # type: ignore[union-attr]
    assert sibling.runner.reap() == []  # requeued, no one else could run it
    assert (row(sibling, task_id).status, row(sibling, task_id).message) == (
        "failure", runner_mod.ORPHANED)


def test_unbound_tasks_are_still_anyones(siblings: tuple[app.Glint, app.Glint],
                                         ctx: RequestContext) -> None:
    owner, sibling = siblings
    task_id = owner.tasks.create(ctx, "s", {}).id
    sibling.runner.run(task_id)
    assert row(sibling, task_id).lease_owner == sibling.runner.owner


def _holder(pid: int, serve_id: str = "abcd1234", host: str | None = None) -> str:
    return f"{host or socket.gethostname()}:{pid}:{serve_id}"


@pytest.mark.parametrize("holder, since, expected", [
    (_holder(os.getppid()), NOW, True),                       # a running process of this host
    (_holder(os.getppid()), NOW - datetime.timedelta(hours=2), False),  # past the hand-off TTL
    (_holder(2 ** 22 + 1), NOW, False),                       # no such process
    (_holder(os.getpid(), "not-live"), NOW, False),           # an earlier process with our pid
    (_holder(2 ** 22 + 1, host="another-host"), NOW, True),   # elsewhere: until the TTL
])
def test_whether_a_holder_is_alive(holder: str, since: datetime.datetime, expected: bool) -> None:
    assert binding.alive(holder, since, NOW) is expected


def test_this_process_runners_are_alive(make_glint: MakeGlint) -> None:
    glint = make_glint()
    assert binding.alive(glint.runner.owner, NOW, NOW)


