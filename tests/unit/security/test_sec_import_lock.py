"""Concurrent ``POST /v2/images/{id}/import`` of one image: exactly one 202, the others 409.

The lock used to be committed naming a task not yet written, and a second import reading it
meanwhile took "task not found" for a stale lock: both got 202, one task then failed "not
locked for this task". The lock and its task are now written in one transaction on the locked
image row. :func:`race` is also run on PostgreSQL (tests/integration/test_import_lock.py).
"""

from __future__ import annotations

import threading
import types
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa

from glint import app, errors
from glint.api.app import create_app
from glint.context import RequestContext
from glint.db import models
from glint.imports import methods
from glint.scripts.registry import Registry
from tests.unit.api.support import CTX_A, PROJECT_A, TestClient, add_image

TRIALS = 20
RACERS = 4
WEB_DOWNLOAD = {"method": {"name": "web-download", "uri": "http://127.0.0.1:9/image"}}


def held_imports(gate: threading.Event) -> Any:
    """An ``api_image_import`` that holds its lock until ``gate`` opens (never fetches)."""
    def main(ctx: Any) -> dict[str, Any]:
        gate.wait(30)
        return {}

    return types.SimpleNamespace(main=main)


def race(glint: app.Glint, ctx: RequestContext, racers: int = RACERS,
         image_id: str | None = None) -> list[object]:
    """``racers`` threads start an import of one image (a new one unless ``image_id``) at
    once; each one's outcome, checked: exactly one started a task."""
    image_id = image_id or add_image(glint, ctx).id
    request = methods.parse(WEB_DOWNLOAD, None, glint.settings, glint.images.backends)
    service = glint.imports
    barrier = threading.Barrier(racers)
    outcomes: list[object] = [None] * racers

    def run(index: int) -> None:
        barrier.wait()
        try:
            outcomes[index] = service.start(ctx, image_id, request)
        except errors.GlintError as exc:
            outcomes[index] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    check_one_winner(glint, ctx, image_id, outcomes)
    return outcomes


def check_one_winner(glint: app.Glint, ctx: RequestContext, image_id: str,
                     outcomes: list[object]) -> None:
    """One task started and holds the lock; every other racer got Conflict."""
    conflicts = [o for o in outcomes if isinstance(o, errors.Conflict)]
    winners = [o for o in outcomes if not isinstance(o, errors.GlintError)]
    assert len(winners) == 1 and len(conflicts) == len(outcomes) - 1, outcomes
    assert all("has an active import task" in c.message for c in conflicts)
    pending = [t for t in glint.tasks.for_image(image_id) if t.status not in ("failure",)]
    assert [t.id for t in pending] == [getattr(winners[0], "id", None)]
    assert glint.images.get(ctx, image_id).extra_properties[methods.LOCK] == pending[0].id


@pytest.fixture
def held(make_glint: Callable[..., app.Glint]) -> Any:
    """A glint whose imports run on threads and hold their locks until the test ends."""
    gate = threading.Event()
    glint = make_glint(registry=Registry.of({methods.SCRIPT: held_imports(gate)}),
                       executor="thread", executor_threads=2)
    yield glint
    gate.set()


def test_concurrent_imports_one_202_the_others_409(held: app.Glint) -> None:
    for _trial in range(TRIALS):
        race(held, CTX_A)


def http_race(client: TestClient, image_id: str) -> list[int]:
    """The statuses of RACERS ``POST .../import`` of ``image_id`` sent at once."""
    barrier = threading.Barrier(RACERS)
    statuses: list[int] = []

    def post() -> None:
        barrier.wait()
        statuses.append(client.post(f"/v2/images/{image_id}/import", json=WEB_DOWNLOAD,
                                    headers=PROJECT_A).status_code)

    threads = [threading.Thread(target=post) for _ in range(RACERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return sorted(statuses)


def test_concurrent_imports_over_http(held: app.Glint) -> None:
    with TestClient(create_app(held, manage_lifecycle=False)) as client:
        for _trial in range(5):
            image = add_image(held, CTX_A)
            assert http_race(client, image.id) == [202] + [409] * (RACERS - 1)


def test_a_lock_whose_task_ended_is_taken_over_once(held: app.Glint) -> None:
    """Racers for a lock whose task has ended: again exactly one 202."""
    first = race(held, CTX_A)
    [task] = [o for o in first if isinstance(o, models.Task)]
    assert task.image_id is not None
    with held.db.session() as session:  # as if it had failed
        session.execute(sa.update(models.Task).where(models.Task.id == task.id)
                        .values(status="failure"))
    race(held, CTX_A, image_id=task.image_id)
