"""Soak: `glint serve` (celery executor) and two `glint worker`s on PostgreSQL, once with
RabbitMQ as the broker and once with Redis (its visibility timeout set as the docs say).

50 imports are submitted through the HTTP API from a loopback HTTP server that pauses in the
middle of each body, and workers are SIGKILLed mid-import (and restarted) several times. Every
task must end in success or in failure with a message within a bounded wait; every active
image's bytes, downloaded through the API, must match its checksums (md5 and sha512) and its
source; there is exactly one image per successful task and none other; the store directory holds
no file that no image points at.

Each run has a queue of its own; on Redis it also uses a database number no other test uses
(redis_soak_url), and the messages a killed worker left unacknowledged there are removed at the
end, so that nothing is delivered into a dead queue an hour later.
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import secrets
import signal
import time
from collections.abc import Iterator

import httpx
import pytest
import sqlalchemy as sa

from glint.db import models
from glint.stores.filesystem import TMP_PREFIX
from tests.acceptance.conftest import Server, start_glint
from tests.httpserver import LocalServer
from tests.integration.celery_support import (  # noqa: F401  (database_url is a fixture)
    BROKERS,
    LEASE,
    Workers,
    database_url,
    own_queue,
    wait_all_final,
    wait_until,
)
from tests.unit.api.support import PROJECT_A

IMAGES = 50
SIZE = 2 * 1024 * 1024
KILLS = 4
DELAY = 1.0  # seconds each source pauses half-way through its body: kills land mid-import
SOAK_BROKERS = {"rabbitmq": BROKERS["rabbitmq"], "redis": "redis://127.0.0.1:6379/8"}
# As docs/how-to/two-node.md says: above the longest task (these take a few seconds). A killed
# worker's reserved messages stay invisible that long; the reaper re-publishes their tasks
# after task_republish_after (LEASE) instead.
VISIBILITY_TIMEOUT = "3600"


@pytest.fixture(params=sorted(SOAK_BROKERS))
def soak_broker(request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    """(broker URL, a queue of this test's own), the queue deleted afterwards."""
    url = SOAK_BROKERS[request.param]
    with own_queue(url, "glint-soak") as queue:
        yield url, queue
    if url.startswith("redis://"):
        _drop_unacked(url, queue)


def _drop_unacked(url: str, queue: str) -> None:
    """Remove the Redis transport's unacknowledged messages bound for ``queue``."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        for tag, raw in client.hscan_iter("unacked"):
            if json.loads(raw)[2] == queue:  # [message, exchange, routing key]
                client.hdel("unacked", tag)
                client.zrem("unacked_index", tag)
    finally:
        client.close()


@pytest.fixture
def serve(tmp_path: pathlib.Path, database_url: str,  # noqa: F811
          soak_broker: tuple[str, str]) -> Iterator[Server]:
    url, queue = soak_broker
    server = start_glint(
        tmp_path, database_url=database_url, executor="celery", broker_url=url,
        broker_visibility_timeout=VISIBILITY_TIMEOUT, task_default_queue=queue,
        store="filesystem", store_path=str(tmp_path / "images"),
        **{k: str(v) for k, v in LEASE.items()})
    yield server
    server.stop()


def _processing_owners(engine: sa.Engine) -> set[int]:
    with engine.connect() as conn:
        owners = conn.execute(sa.select(models.Task.lease_owner).where(
            models.Task.status == "processing")).scalars().all()
    return {int(owner.split(":")[1]) for owner in owners if owner}


def test_fifty_imports_through_the_api_survive_workers_killed_mid_import(
        serve: Server, database_url: str, soak_broker: tuple[str, str],  # noqa: F811
        tmp_path: pathlib.Path) -> None:
    url, queue = soak_broker
    store_path = tmp_path / "images"
    workers = Workers(tmp_path, database_url, url, queue)
    workers.env.update({"GLINT_STORE": "filesystem", "GLINT_STORE_PATH": str(store_path),
                        "GLINT_IMPORT_ALLOWED_HOSTS": '["127.0.0.1"]',
                        "GLINT_BROKER_VISIBILITY_TIMEOUT": VISIBILITY_TIMEOUT})
    engine = sa.create_engine(database_url, poolclass=sa.NullPool)
    sources = {f"/image-{i}": secrets.token_bytes(SIZE) for i in range(IMAGES)}
    api = httpx.Client(base_url=serve.url, headers=PROJECT_A, timeout=30)
    started = time.monotonic()
    try:
        with LocalServer() as source:
            for path, data in sources.items():
                source.serve(path, data, delay=DELAY)
            workers.start(concurrency=3)
            workers.start(concurrency=3)
            tasks: dict[str, str] = {}
            for path in sources:
                response = api.post("/v2/tasks", json={"type": "import", "input": {
                    "import_from": source.url(path), "import_from_format": "raw",
                    "image_properties": {"name": path}}})
                assert response.status_code == 201, response.text
                tasks[response.json()["id"]] = path

            kills = 0
            deadline = time.monotonic() + 45
            while kills < KILLS and time.monotonic() < deadline:
                owners = _processing_owners(engine) & {p.pid for p in workers.processes
                                                       if p.poll() is None}
                if owners:
                    time.sleep(DELAY / 2)  # into the pause in the middle of the body
                    os.killpg(owners.pop(), signal.SIGKILL)
                    kills += 1
                    workers.start(concurrency=3)
                time.sleep(0.2)
            assert kills == KILLS, f"only {kills} kills landed"

            shown = wait_all_final(api, tasks, 60, "every task to end (none stuck)")
    finally:
        workers.stop()

    for task_id, task in shown.items():
        assert task["status"] == "success" or task["message"], (task_id, task)
    succeeded = {task["result"]["image_id"]: tasks[task_id] for task_id, task in shown.items()
                 if task["status"] == "success"}
    assert len(succeeded) == sum(task["status"] == "success" for task in shown.values())
    assert len(succeeded) >= IMAGES - KILLS, [t["message"] for t in shown.values()
                                               if t["status"] == "failure"]

    listed = api.get("/v2/images", params={"limit": 1000}).json()["images"]
    assert sorted(i["id"] for i in listed) == sorted(succeeded)  # one image per success, no other
    assert len({i["name"] for i in listed}) == len(listed)
    for image in listed:
        assert image["status"] == "active", image
        data = api.get(f"/v2/images/{image['id']}/file").content
        assert hashlib.md5(data).hexdigest() == image["checksum"]
        assert image["os_hash_algo"] == "sha512"
        assert hashlib.sha512(data).hexdigest() == image["os_hash_value"]
        assert data == sources[succeeded[image["id"]]] and image["name"] == succeeded[image["id"]]

    with engine.connect() as conn:
        locations = conn.execute(sa.select(models.Image.location).where(
            models.Image.deleted.is_(False))).scalars().all()
        rows = conn.execute(sa.select(models.Task.status, models.Task.attempts)).all()
    engine.dispose()
    api.close()
    assert {status for status, _ in rows} <= {"success", "failure"}
    assert sum(attempts > 1 for _, attempts in rows) >= 1  # the kills did land mid-task
    assert time.monotonic() - started < 120
    files = {p.name for p in store_path.iterdir()}
    committed = {name for name in files if not name.startswith(TMP_PREFIX)}
    assert committed == {pathlib.Path(location or "").name for location in locations}
    # A killed run's half-written file must be gone too once every task has ended.
    left = sorted(files - committed)
    images = {name[len(TMP_PREFIX):len(TMP_PREFIX) + 36] for name in left}
    assert not left, (f"{len(left)} temporary files left by killed runs, for images "
                      f"{sorted(images)} (of which {len(images & set(succeeded))} are active)")
