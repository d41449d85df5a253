"""``glint worker``'s process: a Celery worker consuming the celery executor's queues, with
the runner, the reaper and (``--health-port``) ``/healthcheck`` and ``/metrics`` of its own."""

from __future__ import annotations

import logging
import os

from glint import app, health, metrics
from glint.executors import celery as celery_executor

LOG = logging.getLogger(__name__)


def work(glint: app.Glint, executor: celery_executor.CeleryExecutor, queues: str | None,
         concurrency: int | None, pool: str, log_level: str, health_port: int | None,
         broker: str) -> None:
    """Consume ``queues`` (all configured ones when None) until SIGTERM or SIGINT, which let
    running tasks finish (Celery's warm shutdown); ``broker`` is the URL to log, password
    hidden. Closes ``glint`` at the end."""
    from celery import signals

    settings = glint.settings
    chosen = queues or ",".join(celery_executor.queue_names(settings))
    celery_executor.say_outcomes()  # Celery's line for a run: "ran in", and its outcome
    if pool == "prefork":  # Celery forks children while this process's threads run
        metrics.hold_locks_across_fork()
        signals.worker_process_init.connect(lambda **_: glint.after_fork(), weak=False)
    # SIGTERM or SIGINT: take no new task from here on (the consumer stops only at its next
    # poll, seconds later; what it still receives goes back to the queue).
    signals.worker_shutting_down.connect(lambda **_: executor.drain(), weak=False)
    glint.start(recover=False)
    if health_port is not None:
        health.serve(glint.health, settings.bind_host, health_port, glint.metrics.render)
    threads = concurrency or settings.executor_threads
    LOG.info("glint worker: queues %s, concurrency %d (%s pool), broker %s", chosen, threads,
             pool, broker)
    try:
        # --quiet: no Celery banner, which suggests options (-E) this command does not take;
        # the line above says what it would.
        executor.app.worker_main([
            "--quiet", "worker", f"--queues={chosen}", f"--pool={pool}",
            f"--concurrency={threads}",
            f"--loglevel={log_level.upper()}", f"--hostname=glint-{os.getpid()}@%h",
            "--without-gossip", "--without-mingle", "--without-heartbeat"])
    finally:
        glint.close(timeout=10)
