"""The ``celery`` executor: tasks run by ``glint worker`` processes, through RabbitMQ or Redis.

The Celery app is built here from :class:`~glint.settings.Settings` (no module-level app, no
global configuration) around the runner's ``run``. A message carries only the task id; the
worker's runner re-reads the task, claims it under a lease and runs its script, exactly as the
in-process executors do. The database, not the broker, is the truth: acknowledgement is late
and a lost worker's message is delivered again, and a duplicate finds the claim taken and is
dropped. Task state never goes to a Celery result backend.

Queues: ``task_default_queue`` plus every queue named in ``task_queues`` (task type → queue).
On RabbitMQ they are quorum queues (``broker_quorum_queues``), with ``x-consumer-timeout`` when
``broker_consumer_timeout`` is set (RabbitMQ 3.12 or newer; quorum queues only). Each queue has
a topic exchange of its own (``<queue>.tasks``): a task re-queued to retry after a backoff is
published with a countdown, which on quorum queues only RabbitMQ's native delayed delivery
(Celery's) carries without a worker holding the message, and that needs topic exchanges.

Celery's own log line for a run names the glint task and says how it ended: the message's
Celery id is the glint task id with a suffix, the Celery task returns the runner's outcome
line, and ``glint worker`` words Celery's line as ``ran in``, never ``succeeded``
(:func:`say_outcomes`): ``Task glint.run_task[<id>.<suffix>] ran in 0.5s: 'glint task <id>
(import) ended failure: <message>'``.

A worker that is told to stop (SIGTERM, SIGINT: Celery's warm shutdown) finishes the tasks it
runs and starts none: a message it still receives before its consumer stops goes back to the
queue for another worker (:meth:`CeleryExecutor.drain`).

A failed acknowledgement must not cost a Redis worker its prefetch slot. kombu's virtual
transports (Redis) count a worker's unacknowledged messages in the worker and forget one only
once Redis confirmed its ack. When Redis dies while every slot is taken, the acks fail, the
slots stay taken, and the worker never reads from Redis again: it never notices the lost
connection and consumes nothing after Redis is back. :func:`forget_failed_acks` settles such a
message locally; the consumer then reads its dead connection, sees it closed and reconnects.
Nothing is lost: the task's outcome is in the database, and a copy Redis delivers again is
dropped by the claim.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Mapping
from typing import Any

from glint import errors
from glint.executors import base
from glint.settings import Settings

LOG = logging.getLogger(__name__)
TASK_NAME = "glint.run_task"
# Celery's line for a task that returned, in glint's words: the return value is the runner's
# outcome, which may be a failure of the glint task (the message was handled all the same).
RAN = "Task %(name)s[%(id)s] ran in %(runtime).3fs: %(return_value)s"
AMQP_SCHEMES = ("amqp", "amqps", "pyamqp")


def _celery() -> Any:
    try:
        import celery
    except ImportError as exc:
        raise errors.ConfigurationError(
            "the celery executor needs Celery: pip install 'glint[celery]'") from exc
    return celery


def is_amqp(url: str) -> bool:
    return url.split(":", 1)[0].split("+", 1)[0] in AMQP_SCHEMES


def queue_names(settings: Settings) -> list[str]:
    return sorted({settings.task_default_queue, *settings.task_queues.values()})


def exchange_name(queue: str) -> str:
    """The topic exchange routing to ``queue`` (topic: see the module's docstring)."""
    return f"{queue}.tasks"


def forget_failed_acks(qos: Any) -> None:
    """Make a kombu virtual-transport QoS forget a message whose ack or reject fails.

    The Redis QoS removes a message from its local count of unacknowledged ones (the prefetch
    window) only after Redis confirmed the ack; when the connection is gone the ack raises first
    and the message holds its slot for the life of the channel. Here a failed ack or reject still
    settles the message locally, then raises as before (Celery logs it).
    """
    from kombu.transport import virtual

    ack, reject = qos.ack, qos.reject
    settle_locally: Any = virtual.QoS.ack  # the bookkeeping of the base class only (thread-safe)

    def forget(delivery_tag: str, exc: BaseException) -> None:
        settle_locally(qos, delivery_tag)
        LOG.warning("message %s could not be settled with the broker (%s); it no longer holds "
                    "a prefetch slot (its task's outcome is in the database, and a copy "
                    "delivered again is dropped)", delivery_tag, exc)

    def ack_or_forget(delivery_tag: str) -> None:
        try:
            ack(delivery_tag)
        except BaseException as exc:
            forget(delivery_tag, exc)
            raise

    def reject_or_forget(delivery_tag: str, requeue: bool = False) -> None:
        try:
            reject(delivery_tag, requeue=requeue)
        except BaseException as exc:
            forget(delivery_tag, exc)
            raise

    qos.ack, qos.reject = ack_or_forget, reject_or_forget


def _consumer_step() -> Any:
    """A worker consumer step that applies :func:`forget_failed_acks` to each new task channel
    (the consumer makes one at start and at every reconnection)."""
    from celery import bootsteps
    from kombu.transport import virtual

    class ForgetFailedAcks(bootsteps.StartStopStep):  # type: ignore[misc]
        requires = ("celery.worker.consumer.tasks:Tasks",)

        def start(self, c: Any) -> None:
            qos = getattr(getattr(c.task_consumer, "channel", None), "qos", None)
            if isinstance(qos, virtual.QoS):  # Redis; RabbitMQ counts unacked messages itself
                forget_failed_acks(qos)

    return ForgetFailedAcks


def say_outcomes() -> None:
    """Have this process's Celery log ``... ran in 0.5s: <outcome>`` for a task that returned,
    not ``... succeeded in ...`` (Celery reads its format at each call). For ``glint worker``."""
    from celery.app import trace

    trace.LOG_SUCCESS = RAN


def celery_id(task_id: str) -> str:
    """The Celery id of a message for ``task_id``: the glint id (grep finds Celery's lines),
    with a suffix that tells its messages apart (a retry, a re-publish, a duplicate)."""
    return f"{task_id}.{uuid.uuid4().hex[:8]}"


def make_app(settings: Settings, run: base.RunTask,
             draining: threading.Event | None = None) -> Any:
    """A Celery app configured from ``settings`` whose one task runs ``run(task_id)``; once
    ``draining`` is set it runs none, and sends each message back to its queue."""
    celery = _celery()
    from kombu import entity

    exchange: Any = entity.Exchange
    queue: Any = entity.Queue

    amqp = is_amqp(settings.broker_url)
    arguments: dict[str, Any] = {}
    if amqp and settings.broker_quorum_queues:
        arguments["x-queue-type"] = "quorum"
        if settings.broker_consumer_timeout is not None:
            arguments["x-consumer-timeout"] = settings.broker_consumer_timeout
    app = celery.Celery("glint", set_as_current=False)
    app.conf.update(
        broker_url=settings.broker_url,
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=settings.broker_publish_timeout,
        broker_heartbeat=60 if amqp else 0,
        broker_transport_options=(
            {"confirm_publish": True} if amqp
            # Without a socket timeout a publish on a half-open connection (a broker whose host
            # vanished, a NAT entry dropped) waits forever; kombu's health checks cover the
            # worker's BRPOP connection, which only reads when the socket is readable.
            else {"visibility_timeout": settings.broker_visibility_timeout,
                  "socket_timeout": settings.broker_publish_timeout,
                  "socket_connect_timeout": settings.broker_publish_timeout,
                  "socket_keepalive": True}),
        task_queues=[queue(name, exchange(exchange_name(name), type="topic"), routing_key=name,
                           queue_arguments=arguments or None)
                     for name in queue_names(settings)],
        task_default_queue=settings.task_default_queue,
        task_acks_late=True,               # ack after the run: a lost worker's message returns
        task_reject_on_worker_lost=True,   # ... also when a prefork child is killed
        task_acks_on_failure_or_timeout=True,  # the outcome is in the database already
        worker_prefetch_multiplier=1,
        worker_cancel_long_running_tasks_on_connection_loss=False,  # the lease fences copies
        worker_enable_remote_control=False,
        worker_send_task_events=False,
        worker_hijack_root_logger=False,
        task_ignore_result=True,
        result_backend=None,
        task_serializer="json",
        accept_content=["json"],
        result_accept_content=["json"],
        enable_utc=True,
    )

    stopping = draining if draining is not None else threading.Event()

    def run_task(task_id: str) -> str | None:
        if stopping.is_set():
            from celery.exceptions import Reject

            raise Reject("this worker is stopping", requeue=True)
        return run(task_id)  # the outcome, for Celery's log line (say_outcomes)

    app.task(name=TASK_NAME, acks_late=True, reject_on_worker_lost=True,
             ignore_result=True)(run_task)
    app.steps["consumer"].add(_consumer_step())
    return app


class CeleryExecutor(base.ExecutorBase):
    """Publishes task ids; ``glint worker`` processes consume them."""

    remote = True

    def __init__(self, app: Any, routes: Mapping[str, str], default_queue: str,
                 publish_timeout: float, draining: threading.Event | None = None) -> None:
        self.app = app
        self.draining = draining if draining is not None else threading.Event()
        self.routes = dict(routes)
        self.default_queue = default_queue
        self.publish_timeout = publish_timeout
        self._closed = threading.Event()

    @classmethod
    def from_settings(cls, run: base.RunTask, settings: Settings,
                      threads: int = 1) -> CeleryExecutor:
        draining = threading.Event()
        return cls(make_app(settings, run, draining), settings.task_queues,
                   settings.task_default_queue, settings.broker_publish_timeout, draining)

    def queue_for(self, task_type: str) -> str:
        return self.routes.get(task_type, self.default_queue)

    def submit(self, task_id: str, task_type: str = "") -> None:
        """Publish the id (with publisher confirms on RabbitMQ); ServiceUnavailable if we can't."""
        self._publish(task_id, task_type, None)

    def submit_later(self, task_id: str, task_type: str, delay: float) -> None:
        """Publish the id for delivery in ``delay`` seconds (a retry after its backoff)."""
        self._publish(task_id, task_type, max(1, round(delay)) if delay > 0 else None)

    def drain(self) -> None:
        """From now on this process's worker runs no task: each message it still receives
        goes back to its queue (Celery's warm shutdown stops the consumer at its next poll,
        up to seconds later). Tasks already running finish."""
        self.draining.set()

    def _publish(self, task_id: str, task_type: str, countdown: int | None) -> None:
        if self._closed.is_set():
            LOG.info("executor is shutting down; task %s stays pending", task_id)
            return
        try:
            # The timeouts bound a publish on a half-open connection (RabbitMQ's confirm and
            # the socket write); on Redis the transport's socket_timeout does (make_app).
            self.app.send_task(TASK_NAME, args=[task_id], task_id=celery_id(task_id),
                               queue=self.queue_for(task_type), countdown=countdown,
                               timeout=self.publish_timeout,
                               confirm_timeout=self.publish_timeout, retry=True, retry_policy={
                                   "max_retries": 2, "interval_start": 0, "interval_step": 0.5,
                                   "interval_max": 1})
        except Exception as exc:  # kombu's OperationalError, a socket error, a timeout
            LOG.warning("could not publish task %s: %s", task_id, exc)
            raise errors.ServiceUnavailable(
                f"The task queue (broker) is unavailable, try again later: {exc}") from exc

    def shutdown(self, wait: bool = True, timeout: float | None = None) -> None:
        """Stop publishing; tasks run in workers, which have their own shutdown."""
        if not self._closed.is_set():
            self._closed.set()
            self.app.close()
