"""The import-lock race: concurrent ``POST /v2/images/{id}/import`` of one image, exactly one
of which may start a task (tests/unit/security/test_sec_import_lock.py on SQLite,
tests/integration/test_import_lock.py on PostgreSQL too)."""

from __future__ import annotations

import contextlib
import threading
import types
from collections.abc import Callable, Iterator
from typing import Any

from glint import app, errors
from glint.context import RequestContext
from glint.imports import methods
from glint.scripts.registry import Registry
from tests.unit.api.support import add_image

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


@contextlib.contextmanager
def held_glint(make_glint: Callable[..., app.Glint]) -> Iterator[app.Glint]:
    """A glint whose imports run on threads and hold their locks until the block ends."""
    gate = threading.Event()
    glint = make_glint(registry=Registry.of({methods.SCRIPT: held_imports(gate)}),
                       executor="thread", executor_threads=2)
    try:
        yield glint
    finally:
        gate.set()
