"""Leases, fencing, the reaper, retries and cancellation, on SQLite with both local executors."""

from __future__ import annotations

import datetime
import logging
import threading
import time
import types
from typing import Any

import pytest

from glint import app, errors
from glint.context import RequestContext
from glint.db import attempts, leases, models
from glint.images.service import ImageData
from glint.scripts.contract import ScriptContext
from glint.scripts.registry import Registry
from glint.stores.memory import MemoryStore
from glint.tasks import heartbeat
from glint.tasks import runner as runner_mod
from tests.conftest import MakeGlint

FAST = {"task_lease": 30.0, "task_heartbeat": 10.0, "task_retry_backoff": 0.01}


def script(main: Any, **attrs: Any) -> types.SimpleNamespace:
    return types.SimpleNamespace(main=main, **attrs)


def pending_task(glint: app.Glint, ctx: RequestContext, task_type: str) -> str:
    """A task left pending: the executor is shut, as in a process that died after commit."""
    glint.executor.shutdown()
    return glint.tasks.create(ctx, task_type, {}).id


def row(glint: app.Glint, task_id: str) -> models.Task:
    with glint.db.reader() as session:
        task = session.get(models.Task, task_id)
        assert task is not None
        return task


def history(glint: app.Glint, task_id: str) -> list[tuple[int, str, str | None]]:
    """The task's runs as (number, worker, outcome); every ended run has an end time."""
    with glint.db.reader() as session:
        runs = attempts.of(session, task_id)
    assert all((run.ended_at is None) == (run.outcome is None) for run in runs)
    return [(run.number, run.worker, run.outcome) for run in runs]


def steal(glint: app.Glint, task_id: str, owner: str = "thief") -> leases.Lease:
    """Expire the current lease and claim the task as another runner would."""
    # One transaction: the holder's heartbeat must not renew the lease in between.
    with glint.db.session() as session:
        session.get(models.Task, task_id).lease_expires_at = datetime.datetime(2000, 1, 1)  # type: ignore[union-attr]
        session.flush()  # the claim is a Core statement: the session does not flush for it
        lease = leases.claim(session, task_id, owner, 30, models.utcnow())
    assert lease is not None
    return lease


@pytest.fixture(autouse=True)
def _quick_cancel_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(heartbeat, "CHECK_INTERVAL", 0.0)


# -- claim ------------------------------------------------------------------------------------


def test_claim_takes_pending_once_and_sets_a_lease(make_glint: MakeGlint,
                                                   ctx: RequestContext) -> None:
    glint = make_glint(registry=Registry.of({"s": script(lambda c: {})}))
    task_id = pending_task(glint, ctx, "s")
    now = models.utcnow()
    with glint.db.session() as session:
        first = leases.claim(session, task_id, "a", 30, now)
    with glint.db.session() as session:
        second = leases.claim(session, task_id, "b", 30, now)
    assert first is not None and second is None  # a duplicate delivery finds the claim taken
    task = row(glint, task_id)
    assert (task.status, task.lease_owner, task.lease_token, task.attempts) == (
        "processing", "a", 1, 1)
    assert task.lease_expires_at is not None and task.lease_expires_at > now


def columns(task: models.Task) -> dict[str, Any]:
    return {column.key: getattr(task, column.key) for column in models.Task.__table__.columns}


def test_create_claim_and_end_through_core_return_the_rows_as_written(
        make_glint: MakeGlint, ctx: RequestContext) -> None:
    """The API's create, the claim and the end write through Core, not a session: each hands
    back a detached task whose every column is what the database holds (defaults included)."""
    glint = make_glint(registry=Registry.of({"s": script(lambda c: {})}))
    glint.executor.shutdown()
    created = glint.tasks.create(ctx, "s", {"k": [1]})
    assert (created.attempts, created.lease_token, created.progress) == (0, 0, None)
    assert columns(created) == columns(row(glint, created.id))
    now = models.utcnow()
    with glint.db.connection() as connection:
        claimed = leases.claim_row(connection, created.id, "a", 30, now)
    assert claimed is not None
    lease, task = claimed
    assert (task.status, task.lease_token, lease.token) == ("processing", 1, 1)
    assert columns(task) == columns(row(glint, created.id))
    with glint.db.connection() as connection:
        ended = leases.end_run(connection, lease, {"status": "success", "result": {"r": 1}},
                               "success", "", models.utcnow())
    assert ended is not None and ended.result == {"r": 1}
    assert columns(ended) == columns(row(glint, created.id))
    assert history(glint, created.id) == [(1, "a", "success")]


def test_an_expired_lease_can_be_claimed_with_a_new_token(make_glint: MakeGlint,
                                                          ctx: RequestContext) -> None:
    glint = make_glint(registry=Registry.of({"s": script(lambda c: {})}))
    task_id = pending_task(glint, ctx, "s")
    with glint.db.session() as session:
        first = leases.claim(session, task_id, "a", 30, models.utcnow())
    second = steal(glint, task_id)
    assert first is not None and second.token == first.token + 1
    with glint.db.session() as session:
        assert leases.write(session, first, message="zombie") is False
        assert leases.write(session, second, message="owner") is True
    assert row(glint, task_id).message == "owner"


def test_claim_refuses_a_task_at_its_attempt_limit(make_glint: MakeGlint,
                                                   ctx: RequestContext) -> None:
    glint = make_glint(registry=Registry.of({"s": script(lambda c: {})}), task_max_attempts=1)
    task_id = pending_task(glint, ctx, "s")
    with glint.db.session() as session:
        assert leases.claim(session, task_id, "a", 30, models.utcnow()) is not None
    with glint.db.session() as session:
        session.get(models.Task, task_id).lease_expires_at = datetime.datetime(2000, 1, 1)  # type: ignore[union-attr]
    with glint.db.session() as session:
        assert leases.claim(session, task_id, "b", 30, models.utcnow()) is None


# -- fencing ----------------------------------------------------------------------------------


def test_a_zombie_cannot_write_progress_status_or_activate_its_image(
        make_glint: MakeGlint, ctx: RequestContext) -> None:
    """The run loses its lease half-way: every later write is refused and its image removed."""
    store = MemoryStore()
    seen: dict[str, Any] = {}

    def main(sctx: ScriptContext) -> dict[str, Any]:
        image = sctx.db_api.create_image({"name": "i", "disk_format": "raw",
                                          "container_format": "bare"})
        sctx.db_api.set_image_status(image["id"], "importing", expected="queued")
        with sctx.store_api.writer(image["id"]) as writer:
            writer.write(b"data")
            location = writer.commit()
        seen["image"], seen["thief"] = image["id"], steal(glint, sctx.task_id)
        sctx.report_progress(1, None, "zombie progress")
        seen["cancel"] = sctx.should_cancel()
        data = ImageData(location, 4, "c", "sha512", "v")
        with pytest.raises(errors.LeaseLost):
            sctx.db_api.set_image_data(image["id"], data, from_status="importing")
        with pytest.raises(errors.LeaseLost):
            sctx.db_api.link_image(image["id"])
        return {"zombie": True}

    glint = make_glint(registry=Registry.of({"z": script(main)}), store=store, **FAST)
    task = glint.tasks.create(ctx, "z", {})
    after = row(glint, task.id)
    # The thief's lease stands: status, result and message are as the thief's claim left them.
    assert (after.status, after.result, after.lease_owner) == ("processing", None, "thief")
    assert after.message != "zombie progress"
    assert seen["cancel"] is True  # the zombie's script is told to stop
    assert store.blobs == {}  # the refused activation removed the bytes
    with glint.db.reader() as session:
        image = session.get(models.Image, seen["image"])
        assert image is not None and image.deleted and image.status == "deleted"


def test_a_zombie_that_finishes_records_nothing(make_glint: MakeGlint,
                                                ctx: RequestContext) -> None:
    def main(sctx: ScriptContext) -> dict[str, Any]:
        steal(glint, sctx.task_id)
        return {"done": True}

    glint = make_glint(registry=Registry.of({"z": script(main)}), **FAST)
    task = glint.tasks.create(ctx, "z", {})
    after = row(glint, task.id)
    assert (after.status, after.result) == ("processing", None)
    events = glint.notifier.inner.events  # type: ignore[attr-defined]
    assert "task.success" not in [e.event_type for e in events]


@pytest.mark.parametrize("outcome", ["success", "failure"])
def test_no_lease_lost_line_after_the_task_finished(make_glint: MakeGlint, ctx: RequestContext,
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    caplog: pytest.LogCaptureFixture,
                                                    outcome: str) -> None:
    """The heartbeat stops before the final write: none of its beats lands after it."""
    def main(sctx: ScriptContext) -> dict[str, Any]:
        if outcome == "failure":
            raise errors.ScriptError("no")
        return {}

    finish = runner_mod.Runner._finish

    def finish_then_linger(self: runner_mod.Runner, *args: Any, **kwargs: Any) -> bool:
        done = finish(self, *args, **kwargs)
        time.sleep(0.3)  # ~15 heartbeat intervals before the heartbeat's context ends
        return done

    monkeypatch.setattr(runner_mod.Runner, "_finish", finish_then_linger)
    glint = make_glint(registry=Registry.of({"quick": script(main)}), task_lease=5.0,
                       task_heartbeat=0.02)
    task = glint.tasks.create(ctx, "quick", {})
    assert row(glint, task.id).status == outcome
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert not [line for line in lines if "lost" in line], lines


def test_a_lease_really_lost_is_still_logged(make_glint: MakeGlint, ctx: RequestContext,
                                             caplog: pytest.LogCaptureFixture) -> None:
    def main(sctx: ScriptContext) -> dict[str, Any]:
        steal(glint, sctx.task_id)
        time.sleep(0.3)  # the heartbeat's next renewal finds the lease gone
        return {}

    glint = make_glint(registry=Registry.of({"z": script(main)}), task_lease=5.0,
                       task_heartbeat=0.02)
    glint.tasks.create(ctx, "z", {})
    assert any("was lost; stopping its script" in r.getMessage() for r in caplog.records)


# -- the reaper -------------------------------------------------------------------------------


def _lose_worker(glint: app.Glint, ctx: RequestContext, task_type: str) -> str:
    task_id = pending_task(glint, ctx, task_type)
    with glint.db.session() as session:
        assert leases.claim(session, task_id, "dead-worker", 30, models.utcnow()) is not None
        session.get(models.Task, task_id).lease_expires_at = datetime.datetime(2000, 1, 1)  # type: ignore[union-attr]
    return task_id


def test_reaper_requeues_an_expired_lease_and_the_task_runs(make_glint: MakeGlint,
                                                            ctx: RequestContext) -> None:
    runs: list[int] = []
    glint = make_glint(registry=Registry.of({"s": script(
        lambda c: runs.append(c.attempt) or {"attempt": c.attempt})}))
    task_id = _lose_worker(glint, ctx, "s")
    requeued = glint.runner.reap()
    assert [r.task_id for r in requeued] == [task_id]
    task = row(glint, task_id)
    assert task.status == "pending" and task.lease_token == 2
    assert "was lost" in task.message and "attempt 2 of 3" in task.message
    assert glint.runner.reap() == []  # nothing left to reap
    glint.executor = type(glint.executor)(glint.runner.run)
    assert glint.reaper is not None
    glint.runner.run(task_id)
    assert (row(glint, task_id).status, runs) == ("success", [2])
    assert history(glint, task_id) == [(1, "dead-worker", "lost"),
                                       (2, glint.runner.owner, "success")]


def test_reaper_fails_a_task_at_its_attempt_limit_and_discards_its_image(
        make_glint: MakeGlint, ctx: RequestContext) -> None:
    glint = make_glint(registry=Registry.of({"s": script(lambda c: {})}), task_max_attempts=1)
    task_id = _lose_worker(glint, ctx, "s")
    image = glint.images.create(ctx, {"name": "half", "disk_format": "raw",
                                      "container_format": "bare"})
    with glint.db.session() as session:
        session.get(models.Task, task_id).image_id = image.id  # type: ignore[union-attr]
    assert glint.runner.reap() == []
    task = row(glint, task_id)
    assert task.status == "failure" and "worker running this task was lost 1 time" in task.message
    assert task.expires_at is not None
    assert history(glint, task_id) == [(1, "dead-worker", "failure")]
    with pytest.raises(errors.NotFound):
        glint.images.get(ctx, image.id)


def test_reaper_pass_publishes_requeued_tasks(make_glint: MakeGlint, ctx: RequestContext) -> None:
    glint = make_glint(registry=Registry.of({"s": script(lambda c: {"ok": 1})}))
    task_id = _lose_worker(glint, ctx, "s")
    glint.executor = type(glint.executor)(glint.runner.run)
    assert glint.reaper is not None and glint.reaper.run_once() == 1
    assert row(glint, task_id).status == "success"


def test_stale_pending_tasks_are_found_once_per_threshold(make_glint: MakeGlint,
                                                          ctx: RequestContext) -> None:
    glint = make_glint(registry=Registry.of({"s": script(lambda c: {})}))
    task_id = pending_task(glint, ctx, "s")
    assert glint.runner.stale_pending(older_than=60) == []
    with glint.db.session() as session:
        session.get(models.Task, task_id).updated_at = datetime.datetime(2000, 1, 1)  # type: ignore[union-attr]
    assert [r.task_id for r in glint.runner.stale_pending(older_than=60)] == [task_id]
    assert glint.runner.stale_pending(older_than=60) == []  # bumped: other reapers wait


# -- retries ----------------------------------------------------------------------------------


def test_transient_errors_are_retried_with_backoff_and_shown(make_glint: MakeGlint,
                                                             ctx: RequestContext) -> None:
    messages: list[str] = []
    cleaned: list[int] = []

    def main(sctx: ScriptContext) -> dict[str, Any]:
        messages.append(sctx.db_api.get_task()["message"])
        if len(messages) < 3:
            raise errors.TransientError(f"server busy {len(messages)}")
        return {"attempt": sctx.attempt}

    glint = make_glint(registry=Registry.of({"t": script(
        main, cleanup=lambda c: cleaned.append(c.attempt))}), **FAST)
    task = glint.tasks.create(ctx, "t", {})
    done = row(glint, task.id)
    assert (done.status, done.result) == ("success", {"attempt": 3})
    assert messages[1] == ("Attempt failed with a transient error (server busy 1); retrying in "
                           "0.01 s (retry 1 of 3)")
    assert "(retry 2 of 3)" in messages[2] and "0.02 s" in messages[2]
    assert cleaned == [2, 3]  # cleanup runs before each re-run
    owner = glint.runner.owner
    assert history(glint, task.id) == [(1, owner, "retry"), (2, owner, "retry"),
                                       (3, owner, "success")]
    with glint.db.reader() as session:
        assert attempts.of(session, task.id)[0].message == messages[1]


def test_transient_errors_give_up_at_the_limit(make_glint: MakeGlint,
                                               ctx: RequestContext) -> None:
    def main(sctx: ScriptContext) -> dict[str, Any]:
        raise errors.TransientError("still down")

    glint = make_glint(registry=Registry.of({"t": script(main)}), task_retry_limit=2, **FAST)
    done = row(glint, glint.tasks.create(ctx, "t", {}).id)
    assert (done.status, done.message) == ("failure", "still down (gave up after 2 retries)")


def test_a_retry_waits_in_the_queue_not_in_the_slot(make_glint: MakeGlint,
                                                   ctx: RequestContext) -> None:
    """One slot: while the flaky task waits out its backoff, the slot runs another task."""
    order: list[str] = []
    failed = threading.Event()

    def flaky(sctx: ScriptContext) -> dict[str, Any]:
        order.append(f"flaky {sctx.attempt}")
        if sctx.attempt == 1:
            failed.set()
            raise errors.TransientError("busy")
        return {}

    glint = make_glint(registry=Registry.of({"flaky": script(flaky), "quick": script(
        lambda c: order.append("quick") or {})}), executor="thread", executor_threads=1,
        **{**FAST, "task_retry_backoff": 1.0})
    flaky_id = glint.tasks.create(ctx, "flaky", {}).id
    assert failed.wait(5)
    quick_id = glint.tasks.create(ctx, "quick", {}).id
    _wait_until(lambda: row(glint, quick_id).status == "success", 5)
    waiting = row(glint, flaky_id)
    assert (waiting.status, waiting.retries, waiting.attempts) == ("pending", 1, 0)
    assert waiting.message == ("Attempt failed with a transient error (busy); retrying in 1 s "
                               "(retry 1 of 3)")
    assert waiting.retry_at is not None and waiting.retry_at > models.utcnow()
    glint.runner.run(flaky_id)  # an early message (a duplicate, the reaper's) runs nothing
    _wait_until(lambda: row(glint, flaky_id).status == "success", 5)
    assert order == ["flaky 1", "quick", "flaky 2"]
    assert (row(glint, flaky_id).attempts, row(glint, flaky_id).retries) == (1, 1)


def test_a_task_cancelled_while_waiting_to_retry_is_cleaned_up(make_glint: MakeGlint,
                                                               ctx: RequestContext) -> None:
    cleaned: list[int] = []

    def main(sctx: ScriptContext) -> dict[str, Any]:
        raise errors.TransientError("busy")

    glint = make_glint(registry=Registry.of({"t": script(
        main, cleanup=lambda c: cleaned.append(c.attempt))}), executor="thread",
        **{**FAST, "task_retry_backoff": 30.0})
    task = glint.tasks.create(ctx, "t", {})
    _wait_until(lambda: row(glint, task.id).retries == 1, 5)
    assert row(glint, task.id).status == "pending"
    cancelled = glint.tasks.cancel(ctx, task.id)
    assert (cancelled.status, cancelled.message) == ("failure", runner_mod.CANCELLED)
    assert len(cleaned) == 1


def _wait_until(predicate: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_a_plain_error_is_not_retried(make_glint: MakeGlint, ctx: RequestContext) -> None:
    calls: list[int] = []

    def main(sctx: ScriptContext) -> dict[str, Any]:
        calls.append(1)
        raise errors.ScriptError("bad input")

    glint = make_glint(registry=Registry.of({"t": script(main)}), **FAST)
    assert row(glint, glint.tasks.create(ctx, "t", {}).id).status == "failure"
    assert calls == [1]


# -- cancellation -----------------------------------------------------------------------------


def test_cancel_a_pending_task_it_never_starts(make_glint: MakeGlint, ctx: RequestContext,
                                               other_ctx: RequestContext) -> None:
    runs: list[int] = []
    glint = make_glint(registry=Registry.of({"s": script(lambda c: runs.append(1) or {})}))
    task_id = pending_task(glint, ctx, "s")
    with pytest.raises(errors.NotFound):
        glint.tasks.cancel(other_ctx, task_id)
    cancelled = glint.tasks.cancel(ctx, task_id)
    assert (cancelled.status, cancelled.message) == ("failure", runner_mod.CANCELLED)
    glint.runner.run(task_id)
    assert runs == []
    with pytest.raises(errors.Conflict):
        glint.tasks.cancel(ctx, task_id)


def test_cancel_a_running_task_inline(make_glint: MakeGlint, ctx: RequestContext) -> None:
    cleaned: list[str] = []

    def main(sctx: ScriptContext) -> dict[str, Any]:
        image = sctx.db_api.create_image({"name": "partial", "disk_format": "raw",
                                          "container_format": "bare"})
        glint.tasks.cancel(ctx, sctx.task_id)  # as a user would, while it runs
        assert sctx.should_cancel()
        raise errors.ScriptError(f"stopped with image {image['id']}")

    def cleanup(sctx: ScriptContext) -> None:
        image_id = sctx.db_api.task_image_id()
        assert image_id is not None
        sctx.db_api.discard_image(image_id)
        cleaned.append(image_id)

    glint = make_glint(registry=Registry.of({"c": script(main, cleanup=cleanup)}), **FAST)
    done = row(glint, glint.tasks.create(ctx, "c", {}).id)
    assert (done.status, done.message) == ("failure", runner_mod.CANCELLED)
    assert len(cleaned) == 1
    with pytest.raises(errors.NotFound):
        glint.images.get(ctx, cleaned[0])


def test_cancel_a_running_task_on_the_thread_executor(make_glint: MakeGlint,
                                                      ctx: RequestContext) -> None:
    started = threading.Event()

    def main(sctx: ScriptContext) -> dict[str, Any]:
        started.set()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if sctx.should_cancel():
                raise errors.ScriptError("stopped")
            time.sleep(0.01)
        return {"finished": True}

    glint = make_glint(registry=Registry.of({"c": script(main)}), executor="thread", **FAST)
    task = glint.tasks.create(ctx, "c", {})
    assert started.wait(5)
    # It stops at its next check, which may come before cancel reads the task back.
    assert glint.tasks.cancel(ctx, task.id).status in ("processing", "failure")
    deadline = time.monotonic() + 5
    while row(glint, task.id).status == "processing" and time.monotonic() < deadline:
        time.sleep(0.02)
    assert (row(glint, task.id).status, row(glint, task.id).message) == (
        "failure", runner_mod.CANCELLED)


def test_cancel_through_the_api(make_glint: MakeGlint) -> None:
    from glint.api.app import create_app
    from tests.unit.api.support import PROJECT_A, PROJECT_B, TestClient

    glint = make_glint(registry=Registry.of({"s": script(lambda c: {})}))
    glint.executor.shutdown()
    with TestClient(create_app(glint)) as client:
        task = client.post("/v2/tasks", json={"type": "s", "input": {}}, headers=PROJECT_A).json()
        url = f"/v2/tasks/{task['id']}/actions/cancel"
        assert client.post(url, headers=PROJECT_B).status_code == 404
        response = client.post(url, headers=PROJECT_A)
        assert response.status_code == 202
        assert (response.json()["status"], response.json()["message"]) == (
            "failure", runner_mod.CANCELLED)
        assert client.post(url, headers=PROJECT_A).status_code == 409
        assert client.get(url, headers=PROJECT_A).status_code == 405


# -- start-up and hand-over -------------------------------------------------------------------


def test_heartbeat_renews_the_lease(make_glint: MakeGlint, ctx: RequestContext) -> None:
    expiries: list[datetime.datetime | None] = []

    def main(sctx: ScriptContext) -> dict[str, Any]:
        for _ in range(2):
            expiries.append(row(glint, sctx.task_id).lease_expires_at)
            time.sleep(0.3)
        return {}

    glint = make_glint(registry=Registry.of({"h": script(main)}), task_lease=5.0,
                       task_heartbeat=0.1)
    glint.tasks.create(ctx, "h", {})
    assert expiries[0] is not None and expiries[1] is not None and expiries[1] > expiries[0]


def test_a_slow_renewal_holds_up_no_other_tasks_heartbeat(
        make_glint: MakeGlint, ctx: RequestContext, monkeypatch: pytest.MonkeyPatch) -> None:
    """Heartbeats share one timer thread, but each renewal runs on a thread of its own."""
    expiries: list[datetime.datetime | None] = []
    slow = threading.Event()
    renew = heartbeat.Heartbeat.renew

    def renew_slowly_for_one(self: heartbeat.Heartbeat, **values: object) -> bool:
        if self.lease.task_id == slow_id and not values:  # its beats, not its progress
            slow.set()
            time.sleep(1.0)
        return renew(self, **values)

    def stuck(sctx: ScriptContext) -> dict[str, Any]:
        time.sleep(1.2)
        return {}

    def watched(sctx: ScriptContext) -> dict[str, Any]:
        assert slow.wait(5)
        for _ in range(2):
            expiries.append(row(glint, sctx.task_id).lease_expires_at)
            time.sleep(0.3)
        return {}

    monkeypatch.setattr(heartbeat.Heartbeat, "renew", renew_slowly_for_one)
    glint = make_glint(registry=Registry.of({"stuck": script(stuck), "watched": script(watched)}),
                       executor="thread", executor_threads=2, task_lease=5.0,
                       task_heartbeat=0.1)
    slow_id = glint.tasks.create(ctx, "stuck", {}).id
    other = glint.tasks.create(ctx, "watched", {}).id
    deadline = time.monotonic() + 10
    while {row(glint, t).status for t in (slow_id, other)} != {"success"}:
        assert time.monotonic() < deadline, "the tasks did not finish"
        time.sleep(0.05)
    assert expiries[0] is not None and expiries[1] is not None and expiries[1] > expiries[0]


def test_an_unreachable_broker_is_503_and_the_task_is_not_left_pending(
        make_glint: MakeGlint, ctx: RequestContext) -> None:
    glint = make_glint(registry=Registry.of({"s": script(lambda c: {})}), executor="celery",
                       broker_url="amqp://guest:guest@127.0.0.1:1//", broker_publish_timeout=0.5)
    with pytest.raises(errors.ServiceUnavailable):
        glint.tasks.create(ctx, "s", {})
    with glint.db.reader() as session:
        (task,) = session.query(models.Task).all()
    assert task.status == "failure" and "could not be handed to a worker" in task.message
