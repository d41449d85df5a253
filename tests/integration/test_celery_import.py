"""Imports through real workers while workers are SIGKILLed mid-import (RabbitMQ and Redis).

Every task must end in success (or failure with a message), every active image's bytes must
match its checksums and its source, no image may be left twice, and the store may hold no
committed file that no image points at.
"""

from __future__ import annotations

import hashlib
import os
import pathlib
import secrets
import signal
import time
from typing import Any

from glint import app
from glint.db import models
from glint.scripts import web_import
from glint.scripts.registry import Registry
from glint.stores.filesystem import TMP_PREFIX, FilesystemStore
from tests.conftest import MakeGlint
from tests.httpserver import LocalServer
from tests.integration.celery_support import (  # noqa: F401  (fixtures)
    LEASE,
    Workers,
    broker,
    database_url,
    wait_until,
)

IMAGES = 8
SIZE = 512 * 1024


def _processing_owners(glint: app.Glint) -> set[int]:
    with glint.db.reader() as session:
        owners = session.query(models.Task.lease_owner).filter(
            models.Task.status == "processing").all()
    return {int(owner.split(":")[1]) for (owner,) in owners if owner}


def test_imports_survive_workers_killed_mid_import(
        make_glint: MakeGlint, database_url: str, broker: tuple[str, str],  # noqa: F811
        tmp_path: pathlib.Path, ctx: Any) -> None:
    url, queue = broker
    store_path = tmp_path / "images"
    store = FilesystemStore(store_path)
    # Up to 3 kills may hit one task each time (its retry lands on the replacement worker):
    # attempts enough that no task runs out of them here (the limit is tested on its own).
    api = make_glint(registry=Registry.of({"import": web_import}), executor="celery",
                     store=store, broker_url=url, task_default_queue=queue,
                     task_max_attempts=5, **LEASE)
    workers = Workers(tmp_path, database_url, url, queue)
    workers.env.update({"GLINT_STORE": "filesystem", "GLINT_STORE_PATH": str(store_path),
                        "GLINT_IMPORT_ALLOWED_HOSTS": '["127.0.0.1"]'})
    sources = {f"/image-{i}": secrets.token_bytes(SIZE) for i in range(IMAGES)}
    try:
        with LocalServer() as server:
            for path, data in sources.items():
                server.serve(path, data, delay=1.5)
            workers.start(concurrency=2)
            workers.start(concurrency=2)
            tasks = {api.tasks.create(ctx, "import", {
                "import_from": server.url(path), "import_from_format": "raw",
                "image_properties": {"name": path}}).id: path for path in sources}
            kills = 0
            deadline = time.monotonic() + 60
            while kills < 3 and time.monotonic() < deadline:
                owners = _processing_owners(api) & {p.pid for p in workers.processes
                                                    if p.poll() is None}
                if owners:
                    os.killpg(owners.pop(), signal.SIGKILL)
                    kills += 1
                    workers.start(concurrency=2)
                time.sleep(0.3)
            assert kills >= 1
            wait_until(lambda: all(api.tasks.get(ctx, t).status in ("success", "failure")
                              for t in tasks), 120, "every task to finish")
    finally:
        workers.stop()

    with api.db.reader() as session:
        images = session.query(models.Image).filter(models.Image.deleted.is_(False)).all()
        rows = {t: session.get(models.Task, t) for t in tasks}
    for task_id, row in rows.items():
        assert row is not None
        assert row.status == "success" or row.message, task_id
    succeeded = {row.result["image_id"]: tasks[t] for t, row in rows.items()
                 if row is not None and row.status == "success" and row.result}
    failed = {tasks[t]: row.message for t, row in rows.items()
              if row is not None and row.status != "success"}
    assert len(succeeded) >= IMAGES - 1, failed
    extra = [(i.id, i.name, i.status) for i in images if i.id not in succeeded]
    assert not extra  # no duplicate, nothing half-made left
    assert {i.id for i in images} == set(succeeded)
    for image in images:
        assert image.status == "active" and image.location is not None
        data = b"".join(store.read(image.location))
        assert data == sources[succeeded[image.id]]
        assert hashlib.sha512(data).hexdigest() == image.os_hash_value
    committed = {p.name for p in store_path.iterdir() if not p.name.startswith(TMP_PREFIX)}
    assert committed == {pathlib.Path(i.location or "").name for i in images}
    assert sum(1 for row in rows.values() if row is not None and row.attempts > 1) >= 1
