"""Task dispatch: create → processing latency and tasks/s, with the ``noop`` script.

Latency is read from the database, not the client: from the task's ``created_at`` (set as the
create request builds the row) to the ``started`` time the script records, both on this
machine's clock. Two runs: tasks created one at a time with a pause between them (the latency
of an idle system), then a burst created by ``concurrency`` clients at once (throughput:
tasks from the first ``created_at`` to the last task's final ``updated_at``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import json
import pathlib
import sqlite3
import subprocess
import time
import uuid
from collections.abc import Sequence

import httpx
import sqlalchemy as sa

from glint.db import engine, models
from glint_bench import procs, rawhttp, stats

NOOP = json.dumps({"type": "noop", "input": {}}).encode()
PAUSE = 0.02  # seconds between one-at-a-time creates


@dataclasses.dataclass(frozen=True)
class Dispatch:
    executor: str
    idle: stats.Latency  # one at a time; per_s is the create rate
    burst: stats.Latency  # under load; per_s is tasks run per second
    burst_create_per_s: float


def warm_up(glint: procs.Glint, worker: subprocess.Popen[bytes], log: pathlib.Path,
            timeout: float = 60) -> None:
    """Run one noop task to its end: the worker is consuming, connections are open."""
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=glint.url, timeout=30) as http:
        task = http.post("/v2/tasks", json={"type": "noop", "input": {}}).raise_for_status().json()
        while task["status"] != "success":
            if worker.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the worker did not run a task:\n{log.read_text()[-3000:]}")
            time.sleep(0.05)
            task = http.get(f"/v2/tasks/{task['id']}").raise_for_status().json()


def _epoch(moment: datetime.datetime) -> float:
    return moment.replace(tzinfo=datetime.UTC).timestamp()


def _rows(database_url: str, ids: Sequence[str]) -> list[models.Task]:
    db = engine.Database(database_url)
    try:
        found: list[models.Task] = []
        with db.reader() as session:
            for start in range(0, len(ids), 500):
                found += session.scalars(sa.select(models.Task).where(
                    models.Task.id.in_(ids[start:start + 500]))).all()
        return found
    finally:
        db.dispose()


def _wait_idle(glint: procs.Glint, timeout: float) -> None:
    """Until no task is pending or processing."""
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=glint.url, timeout=30) as http:
        while time.monotonic() < deadline:
            busy = [http.get("/v2/tasks", params={"status": status, "limit": 1}).json()["tasks"]
                    for status in ("pending", "processing")]
            if not any(busy):
                return
            time.sleep(0.05)
    raise RuntimeError(f"tasks still pending or processing after {timeout:g} s")


def _latencies(database_url: str, ids: Sequence[str]) -> tuple[list[float], float]:
    """create → start of each task (seconds), and the span from first create to last finish."""
    rows = _rows(database_url, ids)
    failed = [r for r in rows if r.status != "success"]
    if failed or len(rows) != len(ids):
        raise RuntimeError(f"{len(failed)} noop tasks did not succeed, {len(ids) - len(rows)} "
                           f"missing; first: {failed[0].message if failed else ''}")
    latencies = [r.result["started"] - _epoch(r.created_at) for r in rows if r.result]
    span = max(_epoch(r.updated_at) for r in rows) - min(_epoch(r.created_at) for r in rows)
    return latencies, span


async def _create(port: int, count: int, concurrency: int, pause: float) -> list[str]:
    ids: list[str] = []

    async def client() -> None:
        connection = await rawhttp.Connection.open(port)
        try:
            while len(ids) < count:
                status, body, _ = await connection.request("POST", "/v2/tasks", NOOP)
                if status != 201:
                    raise RuntimeError(f"POST /v2/tasks: HTTP {status} {body[:300]!r}")
                ids.append(json.loads(body)["id"])
                if pause:
                    await asyncio.sleep(pause)
        finally:
            await connection.close()

    await asyncio.gather(*(client() for _ in range(concurrency)))
    return ids


def run(glint: procs.Glint, database_url: str, executor: str, idle_count: int,
        burst_count: int, concurrency: int) -> Dispatch:
    start = time.perf_counter()
    ids = asyncio.run(_create(glint.port, idle_count, 1, PAUSE))
    create_rate = len(ids) / (time.perf_counter() - start)
    _wait_idle(glint, 60 + idle_count)
    idle, _ = _latencies(database_url, ids)

    start = time.perf_counter()
    ids = asyncio.run(_create(glint.port, burst_count, concurrency, 0))
    created = time.perf_counter() - start
    _wait_idle(glint, 60 + burst_count)
    loaded, span = _latencies(database_url, ids)
    idle_stats = dataclasses.replace(stats.latency(idle, 1), per_s=create_rate)
    return Dispatch(executor, idle_stats, stats.latency(loaded, span), len(ids) / created)


_ANCHOR_SCHEMA = ("CREATE TABLE task (id TEXT PRIMARY KEY, status TEXT NOT NULL, input TEXT, "
                  "result TEXT, lease_token INTEGER NOT NULL, created_at REAL, updated_at REAL)",
                  "CREATE TABLE attempt (id INTEGER PRIMARY KEY, task_id TEXT NOT NULL, "
                  "started_at REAL, ended_at REAL, outcome TEXT)",
                  "CREATE INDEX attempt_task ON attempt (task_id)")


def sqlite_loop(path: pathlib.Path, count: int) -> float:
    """The anchor for the thread executor: a task's writes in raw SQLite, tasks/s.

    Each task is the three transactions glint commits for it, on a file with glint's settings
    (WAL, ``synchronous=FULL``, ``BEGIN IMMEDIATE``): the insert of a pending row; its claim
    (an UPDATE of status and token, and the INSERT of its attempt); its end (an UPDATE to
    success with its result, and the attempt's). One thread, prepared statements, no ORM, no
    HTTP, no script: what SQLite alone allows on this disk and these cores."""
    path.unlink(missing_ok=True)
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        for statement in _ANCHOR_SCHEMA:
            db.execute(statement)
        ids = [str(uuid.uuid4()) for _ in range(count)]
        started = time.perf_counter()
        for task_id in ids:
            now = time.time()
            db.execute("BEGIN IMMEDIATE")
            db.execute("INSERT INTO task VALUES (?, 'pending', '{}', NULL, 0, ?, ?)",
                       (task_id, now, now))
            db.execute("COMMIT")
            db.execute("BEGIN IMMEDIATE")
            db.execute("UPDATE task SET status = 'processing', lease_token = lease_token + 1, "
                       "updated_at = ? WHERE id = ? AND status = 'pending'", (now, task_id))
            db.execute("INSERT INTO attempt (task_id, started_at) VALUES (?, ?)", (task_id, now))
            db.execute("COMMIT")
            db.execute("BEGIN IMMEDIATE")
            db.execute("UPDATE task SET status = 'success', result = ?, updated_at = ? "
                       "WHERE id = ? AND status = 'processing' AND lease_token = 1",
                       (json.dumps({"started": now}), now, task_id))
            db.execute("UPDATE attempt SET ended_at = ?, outcome = 'success' "
                       "WHERE task_id = ? AND ended_at IS NULL", (now, task_id))
            db.execute("COMMIT")
        return count / (time.perf_counter() - started)
    finally:
        db.close()
