"""The runner: the only code that changes a task's status."""

from __future__ import annotations

import datetime
import threading
import types
from typing import Any

import pytest

from glint import errors
from glint.context import RequestContext
from glint.db import models
from glint.notifiers.memory import MemoryNotifier
from glint.scripts.contract import ScriptContext
from glint.scripts.registry import Registry
from glint.stores.memory import MemoryStore
from glint.tasks import progress, views
from tests.conftest import MakeGlint

MiB = 1024 * 1024


def script(main: Any, **attrs: Any) -> types.SimpleNamespace:
    return types.SimpleNamespace(main=main, **attrs)


def registry(**scripts: Any) -> Registry:
    return Registry.of(scripts)


def test_success_records_result_and_expiry(make_glint: MakeGlint, ctx: RequestContext) -> None:
    seen: list[ScriptContext] = []

    def main(sctx: ScriptContext) -> dict[str, Any]:
        seen.append(sctx)
        return {"echo": sctx.task_input["value"]}

    glint = make_glint(registry=registry(echo=script(main)), task_time_to_live=5)
    task = glint.tasks.create(ctx, "echo", {"value": 42})
    done = glint.tasks.get(ctx, task.id)
    assert (done.status, done.result, done.message) == ("success", {"echo": 42}, "")
    assert done.expires_at is not None
    ttl = done.expires_at - done.updated_at
    assert abs(ttl - datetime.timedelta(hours=5)) < datetime.timedelta(seconds=2)
    sctx = seen[0]
    assert sctx.task_id == task.id and sctx.task_type == "echo"
    assert sctx.request_context.project_id == "project-a"
    assert sctx.request_context.user_id == "user-a"
    assert sctx.request_context.request_id == ctx.request_id
    assert sctx.should_cancel() is False
    with pytest.raises(AttributeError):
        sctx.task_id = "other"  # type: ignore[misc]


def test_notifications_follow_each_commit(make_glint: MakeGlint, ctx: RequestContext) -> None:
    glint = make_glint(registry=registry(ok=script(lambda c: {})))
    task = glint.tasks.create(ctx, "ok", {})
    events = glint.notifier.inner.events  # type: ignore[attr-defined]
    assert [e.event_type for e in events] == ["task.create", "task.processing", "task.success"]
    assert [e.payload["status"] for e in events] == ["pending", "processing", "success"]
    assert all(e.payload["id"] == task.id for e in events)
    assert all("input" not in e.payload for e in events)  # input may hold secrets


class Picky(MemoryNotifier):
    """Keeps only the event types it says it wants, and records what it was asked."""

    def __init__(self, wanted: set[str]) -> None:
        super().__init__()
        self.wanted = wanted
        self.asked: list[tuple[str, str]] = []

    def wants(self, event_type: str, priority: str) -> bool:
        self.asked.append((event_type, priority))
        return event_type in self.wanted


def test_no_event_is_built_for_a_notifier_that_does_not_want_it(
        make_glint: MakeGlint, ctx: RequestContext) -> None:
    notifier = Picky({"task.failure"})
    glint = make_glint(registry=registry(ok=script(lambda c: {}),
                                         bad=script(lambda c: 1 / 0)), notifier=notifier)
    glint.tasks.create(ctx, "ok", {})
    failed = glint.tasks.create(ctx, "bad", {})
    assert notifier.types() == ["task.failure"]  # create, processing and success were not sent
    assert notifier.events[0].payload["id"] == failed.id
    assert notifier.asked == [("task.create", "INFO"), ("task.processing", "INFO"),
                              ("task.success", "INFO"), ("task.create", "INFO"),
                              ("task.processing", "INFO"), ("task.failure", "ERROR")]


def test_script_error_message_becomes_task_message(make_glint: MakeGlint,
                                                   ctx: RequestContext) -> None:
    def main(sctx: ScriptContext) -> dict[str, Any]:
        raise errors.ScriptError("the URL answered 404 Not Found")

    glint = make_glint(registry=registry(bad=script(main)))
    task = glint.tasks.create(ctx, "bad", {})
    done = glint.tasks.get(ctx, task.id)
    assert (done.status, done.message, done.result) == ("failure", "the URL answered 404 Not Found",
                                                        None)
    assert done.expires_at is not None
    events = glint.notifier.inner.events  # type: ignore[attr-defined]
    assert events[-1].event_type == "task.failure" and events[-1].priority == "ERROR"


def test_unexpected_error_is_reported_with_its_kind(make_glint: MakeGlint,
                                                    ctx: RequestContext) -> None:
    glint = make_glint(registry=registry(bad=script(lambda c: {}["missing"])))
    done = glint.tasks.get(ctx, glint.tasks.create(ctx, "bad", {}).id)
    assert done.status == "failure"
    assert "internal error" in done.message and "KeyError" in done.message


@pytest.mark.parametrize(("returned", "reason"), [
    ([1, 2], "not a JSON object"), ({"when": object()}, "not JSON-serialisable")])
def test_result_must_be_a_json_object(make_glint: MakeGlint, ctx: RequestContext,
                                      returned: Any, reason: str) -> None:
    glint = make_glint(registry=registry(odd=script(lambda c: returned)))
    done = glint.tasks.get(ctx, glint.tasks.create(ctx, "odd", {}).id)
    assert done.status == "failure" and reason in done.message


def test_a_task_runs_once_even_when_run_twice(make_glint: MakeGlint, ctx: RequestContext) -> None:
    calls: list[str] = []
    glint = make_glint(registry=registry(count=script(lambda c: calls.append(c.task_id) or {})))
    task = glint.tasks.create(ctx, "count", {})
    glint.runner.run(task.id)
    glint.runner.run(task.id)
    assert calls == [task.id]


def test_concurrent_runs_claim_the_task_once(make_glint: MakeGlint, ctx: RequestContext) -> None:
    calls: list[str] = []
    gate = threading.Barrier(4)
    glint = make_glint(registry=registry(count=script(lambda c: calls.append(c.task_id) or {})),
                       executor="thread")
    glint.executor.shutdown()  # keep the task pending; the test races the runner itself
    task = glint.tasks.create(ctx, "count", {})

    def race() -> None:
        gate.wait()
        glint.runner.run(task.id)

    threads = [threading.Thread(target=race) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls == [task.id]
    assert glint.tasks.get(ctx, task.id).status == "success"


def test_progress_is_written_and_rate_limited(make_glint: MakeGlint, ctx: RequestContext) -> None:
    seen: list[tuple[str, Any]] = []

    def main(sctx: ScriptContext) -> dict[str, Any]:
        sctx.report_progress(15 * MiB, 60 * MiB)
        seen.append((sctx.db_api.get_task()["message"], sctx.db_api.get_task()["progress"]))
        sctx.report_progress(30 * MiB, 60 * MiB)  # within the interval: not written
        seen.append((sctx.db_api.get_task()["message"], sctx.db_api.get_task()["progress"]))
        return {}

    glint = make_glint(registry=registry(p=script(main)))
    task = glint.tasks.create(ctx, "p", {})
    reported = {"done": 15 * MiB, "total": 60 * MiB, "percent": 25.0}
    assert seen == [("Copied 15 MiB of 60 MiB (25%)", reported)] * 2
    assert views.full(glint.tasks.get(ctx, task.id))["progress"] == reported


def test_progress_clock() -> None:
    now = [0.0]
    written: list[tuple[str, dict[str, Any]]] = []

    reporter = progress.Reporter(lambda text, data: written.append((text, data)),
                                 clock=lambda: now[0])
    reporter(1)
    now[0] = 0.5
    reporter(2)
    now[0] = 1.6
    reporter(3, 4, message="step 3 of 4")
    now[0] = 1.7  # within the interval, but the last report: written, so the bar reaches 100%
    reporter(4, 4, message="step 4 of 4")
    assert written == [("Copied 0 MiB", {"done": 1, "total": None, "percent": None}),
                       ("step 3 of 4", {"done": 3, "total": 4, "percent": 75.0}),
                       ("step 4 of 4", {"done": 4, "total": 4, "percent": 100.0})]


@pytest.mark.parametrize("done, total, percent", [
    (0, 0, 100.0), (1, 3, 33.3), (5, 4, 100.0), (7, None, None)])
def test_progress_percent(done: int, total: int | None, percent: float | None) -> None:
    assert progress.of(done, total) == {"done": done, "total": total, "percent": percent}


def test_stopping_is_seen_by_should_cancel(make_glint: MakeGlint, ctx: RequestContext) -> None:
    seen: list[bool] = []
    glint = make_glint(registry=registry(s=script(lambda c: seen.append(c.should_cancel()) or {})))
    glint.runner.stopping.set()
    glint.tasks.create(ctx, "s", {})
    assert seen == [True]


def test_recover_fails_interrupted_tasks_and_discards_their_images(
        make_glint: MakeGlint, ctx: RequestContext) -> None:
    store = MemoryStore()
    glint = make_glint(registry=registry(ok=script(lambda c: {})), store=store)
    glint.executor.shutdown()  # tasks stay pending: we play the crashed process by hand
    interrupted = glint.tasks.create(ctx, "ok", {})
    waiting = glint.tasks.create(ctx, "ok", {})
    image = glint.images.create(ctx, {"name": "half", "disk_format": "raw",
                                      "container_format": "bare"})
    with store.writer(image.id) as writer:
        writer.write(b"partial")
        location = writer.commit()
    with glint.db.session() as session:
        row = session.get(models.Task, interrupted.id)
        assert row is not None
        row.status, row.image_id = "processing", image.id
        img = session.get(models.Image, image.id)
        assert img is not None
        img.status, img.location = "saving", location

    assert glint.runner.recover() == [waiting.id]
    failed = glint.tasks.get(ctx, interrupted.id)
    assert failed.status == "failure" and "stopped while this task was running" in failed.message
    with pytest.raises(errors.NotFound):
        glint.images.get(ctx, image.id)
    assert store.blobs == {}
    assert glint.tasks.get(ctx, waiting.id).status == "pending"


def _interrupt(glint: Any, task_id: str, image_id: str) -> None:
    with glint.db.session() as session:
        row = session.get(models.Task, task_id)
        row.status, row.image_id = "processing", image_id


def test_recover_never_deletes_an_image_older_than_the_task(
        make_glint: MakeGlint, ctx: RequestContext) -> None:
    glint = make_glint(registry=registry(ok=script(lambda c: {})))
    glint.executor.shutdown()
    image = glint.images.create(ctx, {"name": "users", "disk_format": "raw",
                                      "container_format": "bare"})
    task = glint.tasks.create(ctx, "ok", {})
    _interrupt(glint, task.id, image.id)
    glint.runner.recover()
    assert glint.tasks.get(ctx, task.id).status == "failure"
    assert glint.images.get(ctx, image.id).status == "queued"  # the user's image stays


def test_recover_lets_a_script_clean_up_its_own_work(make_glint: MakeGlint,
                                                     ctx: RequestContext) -> None:
    cleaned: list[tuple[str, str | None, bool]] = []

    def cleanup(sctx: ScriptContext) -> None:
        cleaned.append((sctx.task_id, sctx.request_context.project_id, sctx.should_cancel()))

    glint = make_glint(registry=registry(ok=script(lambda c: {}, cleanup=cleanup)))
    glint.executor.shutdown()
    task = glint.tasks.create(ctx, "ok", {})
    image = glint.images.create(ctx, {"name": "half", "disk_format": "raw",
                                      "container_format": "bare"})
    _interrupt(glint, task.id, image.id)
    glint.runner.recover()
    assert cleaned == [(task.id, "project-a", True)]
    assert glint.images.get(ctx, image.id).status == "queued"  # the hook decides, not the runner


def test_start_resubmits_pending_tasks(make_glint: MakeGlint, ctx: RequestContext) -> None:
    glint = make_glint(registry=registry(ok=script(lambda c: {"ran": True})))
    glint.executor.shutdown()
    task = glint.tasks.create(ctx, "ok", {})
    assert glint.tasks.get(ctx, task.id).status == "pending"
    glint.executor = type(glint.executor)(glint.runner.run)
    glint.start()
    assert glint.tasks.get(ctx, task.id).result == {"ran": True}


def test_an_abandoned_interoperable_import_reverts_the_users_image(
        make_glint: MakeGlint, ctx: RequestContext) -> None:
    store = MemoryStore()
    glint = make_glint(store=store)  # the installed scripts, api_image_import among them
    glint.executor.shutdown()
    image = glint.images.create(ctx, {"name": "mine", "disk_format": "raw",
                                      "container_format": "bare"})
    task = glint.tasks.create(ctx, "api_image_import", {
        "image_id": image.id,
        "import_req": {"method": {"name": "web-download", "uri": "http://127.0.0.1:9/x"}}},
        image_id=image.id)
    with store.writer(image.id) as writer:  # committed by the dead run, never recorded
        writer.write(b"half")
        writer.commit()
    with glint.db.session() as session:
        row = session.get(models.Task, task.id)
        row.status = "processing"
        img = session.get(models.Image, image.id)
        img.status = "importing"
        img.set_property("os_glance_import_task", task.id)

    glint.runner.recover()

    assert glint.tasks.get(ctx, task.id).status == "failure"
    reverted = glint.images.get(ctx, image.id)
    assert reverted.status == "queued"
    assert "os_glance_import_task" not in reverted.extra_properties
    assert store.blobs == {}
