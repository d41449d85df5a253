"""Bare Celery running no-op tasks on the same broker: the anchor for the celery executor.

The same broker, queue kind, worker pool (threads) and concurrency as the celery executor's run,
and nothing of glint's: no database, no runner, no script. Two settings: Celery's defaults
(early acknowledgement, prefetch 4) and the delivery settings glint's executor needs (late
acknowledgement, prefetch 1, publisher confirms), so the cost of those is seen apart from
glint's own.

Each task appends the time it ran to a file (``O_APPEND``: whole lines from any thread); the
run's tasks/s is the task count over the span from the first publish to the last task run,
as the dispatch run measures glint's (first ``created_at`` to last ``updated_at``).

The worker is ``celery -A glint_bench.barecelery worker``, configured by ``BENCH_BARE_*``
environment variables.
"""

from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import sys
import time
from concurrent import futures
from typing import Any

import celery

from glint_bench import procs

BROKER = "BENCH_BARE_BROKER"
QUEUE = "BENCH_BARE_QUEUE"
STRICT = "BENCH_BARE_STRICT"  # "1": glint's delivery settings


def make_app(broker: str, queue: str, strict: bool) -> Any:
    app = celery.Celery("glint_bench_bare", broker=broker, set_as_current=False)
    app.conf.update(task_default_queue=queue, task_ignore_result=True, result_backend=None,
                    worker_hijack_root_logger=False, worker_enable_remote_control=False,
                    worker_send_task_events=False, task_serializer="json",
                    accept_content=["json"])
    if strict:
        app.conf.update(task_acks_late=True, task_reject_on_worker_lost=True,
                        worker_prefetch_multiplier=1,
                        broker_transport_options={"confirm_publish": True})
    app.task(name="bench.noop")(_noop)
    return app


def _noop(path: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, f"{time.time()}\n".encode())
    finally:
        os.close(fd)


app = make_app(os.environ.get(BROKER, "memory://"), os.environ.get(QUEUE, "bench-bare"),
               os.environ.get(STRICT) == "1")


def _runs(path: pathlib.Path) -> list[float]:
    try:
        return [float(line) for line in path.read_text().split()]
    except FileNotFoundError:
        return []


def _wait(path: pathlib.Path, count: int, worker: subprocess.Popen[bytes],
          log: pathlib.Path, timeout: float) -> list[float]:
    deadline = time.monotonic() + timeout
    while len(runs := _runs(path)) < count:
        if worker.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"bare celery ran {len(runs)} of {count} tasks:\n"
                               f"{log.read_text()[-3000:]}")
        time.sleep(0.02)
    return runs


def run(processes: procs.Processes, broker: str, queue: str, strict: bool, count: int,
        clients: int, concurrency: int, work: pathlib.Path) -> float:
    """Tasks/s of ``count`` no-op tasks published by ``clients`` threads at once."""
    env = {**os.environ, BROKER: broker, QUEUE: queue, STRICT: "1" if strict else "0"}
    log = work / f"bare-celery-{'strict' if strict else 'defaults'}.log"
    worker = processes.start([sys.executable, "-m", "celery", "-A", "glint_bench.barecelery", "worker",
                    "--pool", "threads", "--concurrency", str(concurrency), "-Q", queue,
                    "--loglevel", "warning", "--without-heartbeat", "--without-gossip",
                    "--without-mingle"], env, log, stop_signal=signal.SIGQUIT)
    try:
        return _measure(worker, log, broker, queue, strict, count, clients, work)
    finally:
        processes.stop(worker)


def _measure(worker: subprocess.Popen[bytes], log: pathlib.Path, broker: str, queue: str,
             strict: bool, count: int, clients: int, work: pathlib.Path) -> float:
    publisher = make_app(broker, queue, strict)
    task = publisher.tasks["bench.noop"]
    warm = work / f"bare-warm-{queue}-{int(strict)}"
    task.apply_async(args=[str(warm)])
    _wait(warm, 1, worker, log, 60)
    path = work / f"bare-runs-{queue}-{int(strict)}"
    share = [count // clients + (i < count % clients) for i in range(clients)]

    def publish(n: int) -> None:
        for _ in range(n):
            task.apply_async(args=[str(path)])

    started = time.time()
    with futures.ThreadPoolExecutor(clients) as pool:
        list(pool.map(publish, share))
    runs = _wait(path, count, worker, log, 60 + count)
    publisher.close()
    return count / (max(runs) - started)
