"""API latency with 1k, 10k and 100k tasks in the database.

Tasks are seeded by direct inserts through glint's models (fast, and the rows are what the
API would have written: owner ``demo``, the anonymous default project, so they are visible).
At each size, ``GET /v2/tasks/{id}`` (random ids) and the first list page
(``GET /v2/tasks?limit=25``) are driven by keep-alive clients for a fixed time: one client
(the unloaded cost of a request) and ``concurrency`` clients (latency under load).
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import random
import time
import uuid
from collections.abc import Callable

import sqlalchemy as sa

from glint.db import engine, models
from glint_bench import rawhttp, stats

SEED_BATCH = 5000
SAMPLE_IDS = 2000
MAX_REQUESTS = 200_000


@dataclasses.dataclass(frozen=True)
class Level:
    tasks: int
    get_one: stats.Latency  # one client
    get: stats.Latency  # ``concurrency`` clients
    list_one: stats.Latency
    list: stats.Latency


def seed(database_url: str, total: int) -> list[str]:
    """Insert tasks until there are ``total``; return a sample of task ids."""
    db = engine.Database(database_url)
    try:
        with db.session() as session:
            have = session.scalar(sa.select(sa.func.count()).select_from(models.Task)) or 0
        now = models.utcnow()
        for start in range(have, total, SEED_BATCH):
            rows = [_row(now, i) for i in range(start, min(total, start + SEED_BATCH))]
            with db.session() as session:
                session.execute(sa.insert(models.Task), rows)
        with db.reader() as session:
            ids = session.scalars(sa.select(models.Task.id).limit(SAMPLE_IDS * 10)).all()
        return random.sample(list(ids), min(SAMPLE_IDS, len(ids)))
    finally:
        db.dispose()


def _row(now: datetime.datetime, index: int) -> dict[str, object]:
    created = now - datetime.timedelta(seconds=index * 0.01)
    return {"id": str(uuid.uuid4()), "type": "noop", "status": "success", "owner": "demo",
            "user_id": "demo", "request_id": f"req-{uuid.uuid4()}", "input": {},
            "result": {"started": 0.0}, "message": "", "context": {"project_id": "demo"},
            "created_at": created, "updated_at": created, "deleted": False,
            "expires_at": now + datetime.timedelta(days=30), "attempts": 1, "max_attempts": 3,
            "lease_token": 1, "cancel_requested": False}


async def _drive(port: int, path: Callable[[], str], concurrency: int,
                 seconds: float) -> stats.Latency:
    durations: list[float] = []
    deadline = time.perf_counter() + seconds

    async def client() -> None:
        connection = await rawhttp.Connection.open(port)
        try:
            while time.perf_counter() < deadline and len(durations) < MAX_REQUESTS:
                status, body, took = await connection.request("GET", path())
                if status != 200:
                    raise RuntimeError(f"GET {path()}: HTTP {status} {body[:300]!r}")
                durations.append(took)
        finally:
            await connection.close()

    start = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    return stats.latency(durations, time.perf_counter() - start)


def measure(port: int, database_url: str, tasks: int, concurrency: int,
            seconds: float) -> Level:
    ids = seed(database_url, tasks)

    def one() -> str:
        return f"/v2/tasks/{random.choice(ids)}"

    def page() -> str:
        return "/v2/tasks?limit=25"

    def drive(path: Callable[[], str], clients: int, duration: float) -> stats.Latency:
        return asyncio.run(_drive(port, path, clients, duration))

    drive(one, concurrency, 1.0)  # warm-up: connections, caches
    drive(page, concurrency, 1.0)
    return Level(tasks, get_one=drive(one, 1, seconds / 2), get=drive(one, concurrency, seconds),
                 list_one=drive(page, 1, seconds / 2), list=drive(page, concurrency, seconds))
