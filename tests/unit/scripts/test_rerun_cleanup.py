"""The ``cleanup`` hooks of ``clone`` and ``export``: what a killed run left goes, nothing else.

A killed run is played by hand: the task is claimed under a lease by a "worker" that does part
of the script's work and then vanishes (its lease expires). The reaper then either queues the
task again (the re-run calls ``cleanup`` first) or, out of runs, fails it (and the runner calls
``cleanup`` for the abandoned task).
"""

from __future__ import annotations

import datetime
import os
import pathlib
from collections.abc import Callable
from typing import Any

import pytest

from glint import app
from glint.context import RequestContext
from glint.db import leases, models
from glint.scripts import clone, export_targets
from glint.stores.filesystem import TMP_PREFIX, FilesystemStore
from glint.tasks import runner as runner_mod
from glint.tasks import script_api
from tests.conftest import MakeGlint
from tests.unit.scripts.support import active_image, live_images

DATA = os.urandom(256 * 1024 + 5)
FAST = {"task_lease": 30.0, "task_heartbeat": 10.0}

DeadRun = Callable[[script_api.ScriptDbApi], Any]


def _killed_run(glint: app.Glint, ctx: RequestContext, task_type: str,
                task_input: dict[str, Any], work: DeadRun) -> str:
    """A task whose first run did ``work`` and was then killed; its lease has expired."""
    glint.executor.shutdown()  # the task stays pending: this test plays the worker
    task_id = glint.tasks.create(ctx, task_type, task_input).id
    with glint.db.session() as session:
        lease = leases.claim(session, task_id, "killed-worker", 30, models.utcnow())
    assert lease is not None
    work(script_api.ScriptDbApi(glint.db, glint.images, glint.locations, ctx, task_id, lease))
    with glint.db.session() as session:
        task = session.get(models.Task, task_id)
        assert task is not None
        task.lease_expires_at = datetime.datetime(2000, 1, 1)
    return task_id


def _rerun(glint: app.Glint, task_id: str) -> models.Task:
    """The reaper queues the task again; a worker runs it (attempt 2)."""
    assert [r.task_id for r in glint.runner.reap()] == [task_id]
    glint.runner.run(task_id)
    return _row(glint, task_id)


def _row(glint: app.Glint, task_id: str) -> models.Task:
    with glint.db.reader() as session:
        task = session.get(models.Task, task_id)
        assert task is not None
        return task


# -- clone --------------------------------------------------------------------------------


@pytest.fixture
def store(tmp_path: pathlib.Path) -> FilesystemStore:
    return FilesystemStore(tmp_path / "images")


def _half_made_clone(source_id: str, store: FilesystemStore,
                     committed: bool) -> DeadRun:
    """What a clone killed mid-way leaves: its image, importing, and its bytes (committed but
    not yet recorded, or a half-written temporary file)."""
    def work(api: script_api.ScriptDbApi) -> None:
        source = api.get_image(source_id)
        location = api.get_image_location(source_id)
        assert location is not None
        image_id = api.create_image(clone.clone_values(source, {}, api._ctx))["id"]
        api.set_image_status(image_id, "importing", expected="queued")
        if committed:
            store.copy(location, image_id)
        else:
            store.writer(image_id).write(DATA[:1000])  # never committed nor aborted
    return work


@pytest.mark.parametrize("committed", [True, False], ids=["bytes-committed", "bytes-half"])
def test_a_rerun_clone_discards_the_half_made_clone_and_its_bytes(
        make_glint: MakeGlint, ctx: RequestContext, store: FilesystemStore,
        committed: bool) -> None:
    glint = make_glint(store=store, **FAST)
    source = active_image(glint, ctx, DATA, name="source")
    task_id = _killed_run(glint, ctx, "clone", {"image_id": source.id},
                          _half_made_clone(source.id, store, committed))
    (half_made,) = [i.id for i in live_images(glint) if i.id != source.id]

    task = _rerun(glint, task_id)

    assert (task.status, task.attempts) == ("success", 2), task.message
    assert task.result is not None and task.result["image_id"] != half_made
    images = {i.id: i for i in live_images(glint)}
    assert sorted(images) == sorted([source.id, task.result["image_id"]])  # exactly one clone
    assert images[source.id].status == "active"
    assert sorted(p.name for p in store.path.iterdir()) == sorted(images)  # no other bytes
    assert store.path.joinpath(task.result["image_id"]).read_bytes() == DATA


def test_an_abandoned_clone_leaves_nothing(make_glint: MakeGlint, ctx: RequestContext,
                                           store: FilesystemStore) -> None:
    glint = make_glint(store=store, task_max_attempts=1, **FAST)
    source = active_image(glint, ctx, DATA, name="source")
    task_id = _killed_run(glint, ctx, "clone", {"image_id": source.id},
                          _half_made_clone(source.id, store, committed=False))

    assert glint.runner.reap() == []  # out of runs: failed, and cleaned up

    task = _row(glint, task_id)
    assert task.status == "failure" and "was lost 1 time(s)" in task.message
    assert [i.id for i in live_images(glint)] == [source.id]
    assert [p.name for p in store.path.iterdir()] == [source.id]


def test_clone_cleanup_with_nothing_to_remove_leaves_the_source(
        make_glint: MakeGlint, ctx: RequestContext, store: FilesystemStore) -> None:
    glint = make_glint(store=store, **FAST)
    source = active_image(glint, ctx, DATA, name="source")
    task_id = _killed_run(glint, ctx, "clone", {"image_id": source.id}, lambda api: None)

    task = _rerun(glint, task_id)

    assert task.status == "success", task.message
    assert len(live_images(glint)) == 2
    assert glint.images.get(ctx, source.id).status == "active"
    assert not [p for p in store.path.iterdir() if p.name.startswith(TMP_PREFIX)]


# -- export -------------------------------------------------------------------------------


@pytest.fixture
def exports(tmp_path: pathlib.Path) -> pathlib.Path:
    directory = tmp_path / "exports"
    directory.mkdir()
    return directory


@pytest.fixture
def export_glint(make_glint: MakeGlint, exports: pathlib.Path,
                 tmp_path: pathlib.Path) -> app.Glint:
    return make_glint(export_allowed_dirs=(exports,), work_dir=tmp_path / "work", **FAST)


def _partial_export(target: pathlib.Path, exports: pathlib.Path, work_dir: pathlib.Path,
                    publish: bool) -> DeadRun:
    """What an export killed mid-way leaves: a temporary file with part of the data, or (killed
    after publishing, before its success was recorded) the whole target file; and the scratch
    directory of a conversion."""
    def work(api: script_api.ScriptDbApi) -> None:
        writer = export_targets.FileWriter(target, (str(exports),), api._task_id)
        writer.write(DATA if publish else DATA[:1000])
        if publish:
            writer.commit()
        scratch = work_dir / f"export-{api._task_id}-x1y2"
        scratch.mkdir(parents=True)
        (scratch / "converted").write_bytes(DATA[:10])
    return work


@pytest.mark.parametrize("publish", [False, True], ids=["partial", "published-unrecorded"])
def test_a_rerun_export_removes_what_the_killed_run_wrote(
        export_glint: app.Glint, ctx: RequestContext, exports: pathlib.Path,
        tmp_path: pathlib.Path, publish: bool) -> None:
    image = active_image(export_glint, ctx, DATA)
    target = exports / "out.raw"
    task_id = _killed_run(export_glint, ctx, "export",
                          {"image_id": image.id, "export_to": f"file://{target}"},
                          _partial_export(target, exports, tmp_path / "work", publish))
    assert len(os.listdir(exports)) == 1

    task = _rerun(export_glint, task_id)

    assert (task.status, task.attempts) == ("success", 2), task.message
    assert os.listdir(exports) == ["out.raw"]
    assert target.read_bytes() == DATA
    assert os.listdir(tmp_path / "work") == []


def test_export_cleanup_never_touches_files_it_did_not_write(
        export_glint: app.Glint, ctx: RequestContext, exports: pathlib.Path) -> None:
    image = active_image(export_glint, ctx, DATA)
    target = exports / "out.raw"
    others = export_targets.FileWriter(target, (str(exports),), "another-task")
    others.write(b"another task's export to the same name, still running")
    task_id = _killed_run(export_glint, ctx, "export",
                          {"image_id": image.id, "export_to": f"file://{target}"},
                          _partial_export(target, exports, exports.parent / "work", publish=False))
    target.write_bytes(b"someone else's finished file")  # appeared after the task was created

    task = _rerun(export_glint, task_id)

    assert task.status == "failure" and "already exists" in task.message
    assert target.read_bytes() == b"someone else's finished file"
    left = sorted(os.listdir(exports))
    assert len(left) == 2 and left[0].startswith(".out.raw.another-task.") and left[1] == "out.raw"
    others.abort()


def test_an_abandoned_export_leaves_no_partial_file(
        make_glint: MakeGlint, ctx: RequestContext, exports: pathlib.Path,
        tmp_path: pathlib.Path) -> None:
    glint = make_glint(export_allowed_dirs=(exports,), work_dir=tmp_path / "work",
                       task_max_attempts=1, **FAST)
    image = active_image(glint, ctx, DATA)
    target = exports / "out.raw"
    task_id = _killed_run(glint, ctx, "export",
                          {"image_id": image.id, "export_to": f"file://{target}"},
                          _partial_export(target, exports, tmp_path / "work", publish=False))

    assert glint.runner.reap() == []

    task = _row(glint, task_id)
    assert task.status == "failure" and task.message == runner_mod.LOST.format(attempts=1)
    assert os.listdir(exports) == []
    assert os.listdir(tmp_path / "work") == []
