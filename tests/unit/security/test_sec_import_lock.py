"""Concurrent ``POST /v2/images/{id}/import`` of one image: exactly one 202, the others 409.

The lock used to be committed naming a task not yet written, and a second import reading it
meanwhile took "task not found" for a stale lock: both got 202, one task then failed "not
locked for this task". The lock and its task are now written in one transaction on the locked
image row. The race (:mod:`tests.import_race`) is also run on PostgreSQL
(tests/integration/test_import_lock.py).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import pytest
import sqlalchemy as sa

from glint import app
from glint.api.app import create_app
from glint.db import models
from tests.import_race import RACERS, TRIALS, WEB_DOWNLOAD, held_glint, race
from tests.unit.api.support import CTX_A, PROJECT_A, TestClient, add_image


@pytest.fixture
def held(make_glint: Callable[..., app.Glint]) -> Iterator[app.Glint]:
    """A glint whose imports run on threads and hold their locks until the test ends."""
    with held_glint(make_glint) as glint:
        yield glint


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
