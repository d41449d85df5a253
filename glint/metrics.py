"""Prometheus metrics: what glint counts and times, and the ``/metrics`` answer.

The counters and histograms are prometheus-client's, module-level as that library means them
to be: the runner, the reaper, the data path and the HTTP middleware add to them where things
happen. What is better read from the database than counted (tasks by status now, images and
bytes by store) is read when scraped, by :class:`DatabaseCollector`, in one grouped query each,
kept for :data:`CACHE_SECONDS`.

Processes: ``glint serve --workers N`` runs prometheus-client's multiprocess mode (its
supervisor names a directory in ``PROMETHEUS_MULTIPROC_DIR`` before the API workers start, and
removes it at exit), so any API worker's ``/metrics`` answers for all of them.
``glint worker`` answers for itself on its ``--health-port``. docs/operations.md lists the
metrics; docs/grafana/glint.json is a dashboard built on them.
"""

from __future__ import annotations

import inspect
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import prometheus_client
import sqlalchemy as sa
from prometheus_client import multiprocess, registry, values
from prometheus_client.core import GaugeMetricFamily

from glint.db import engine, models

LOG = logging.getLogger(__name__)
CACHE_SECONDS = 5.0
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"  # what generate_latest writes
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

# The ``_created`` series (one per counter child, a start time) double what a scrape carries
# and no dashboard uses them.
prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]

# Task runs take from milliseconds (a no-op) to hours (a large import or conversion).
TASK_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 1800, 3600, 10800, 21600)
HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

TASKS_CREATED = prometheus_client.Counter(
    "glint_tasks_created", "Tasks created (written and handed to an executor).", ["type"])
TASKS_FINISHED = prometheus_client.Counter(
    "glint_tasks_finished", "Tasks that reached a final status.", ["type", "status"])
TASK_DURATION = prometheus_client.Histogram(
    "glint_task_duration_seconds", "How long a run of a task held its runner, from its claim "
    "to its end (each run: a retry or a re-queued task runs again).", ["type"],
    buckets=TASK_BUCKETS)
TASK_QUEUE_WAIT = prometheus_client.Histogram(
    "glint_task_queue_wait_seconds", "From a task's creation to its first claim by a runner "
    "(pending to processing).", ["type"], buckets=TASK_BUCKETS)
TASK_RETRIES = prometheus_client.Counter(
    "glint_task_retries", "Runs that raised a TransientError and were queued to run again.",
    ["type"])
LEASE_EXPIRIES = prometheus_client.Counter(
    "glint_task_lease_expiries", "Running tasks whose lease expired (their runner was lost), "
    "as the reaper found them.", ["type"])
REAPER_ACTIONS = prometheus_client.Counter(
    "glint_reaper_actions", "What the reaper did: requeue (a lost runner's task), fail (at "
    "its last attempt, or bound to a lost process), republish (a pending task whose message "
    "may be lost), sweep (an unfinished store write removed).", ["action"])
DATA_BYTES = prometheus_client.Counter(
    "glint_image_data_bytes", "Image bytes moved, by direction (upload: PUT file and stage; "
    "import: written by import tasks; download: GET file) and store.", ["direction", "store"])
CACHE_REQUESTS = prometheus_client.Counter(
    "glint_cache_requests", "Image cache look-ups by downloads of active images: hit, miss, "
    "discarded (a cached copy changed since its fill: removed, served from the store).",
    ["outcome"])
CACHE_FILLS = prometheus_client.Counter(
    "glint_cache_fills", "Image cache fills that ended: cached, mismatch (bytes not the "
    "image's checksum or multihash: discarded), failed, stalled (abandoned).", ["outcome"])
CACHE_EVICTIONS = prometheus_client.Counter(
    "glint_cache_evictions", "Images evicted from the image cache to keep to its size limit.")
HTTP_REQUESTS = prometheus_client.Counter(
    "glint_http_requests", "HTTP requests answered, by method, route template and status.",
    ["method", "route", "status"])
HTTP_DURATION = prometheus_client.Histogram(
    "glint_http_request_duration_seconds", "From a request's arrival to the end of its "
    "response (a download's too), by method and route template.", ["method", "route"],
    buckets=HTTP_BUCKETS)

# The families the database collector yields (names as scraped).
DATABASE_FAMILIES = {
    "glint_tasks": "Tasks by status and type now (not deleted; finished ones until purged).",
    "glint_images": "Images with data in each store, not deleted.",
    "glint_image_bytes": "Bytes of the images with data in each store, not deleted.",
    "glint_metrics_database_up": "1 when the scrape could read the database, else 0.",
}


def meter(direction: str, store: str) -> Callable[[int], None]:
    """A function adding a byte count to ``glint_image_data_bytes{direction, store}``."""
    return DATA_BYTES.labels(direction, store).inc


def observe_finished(task_type: str, status: str) -> None:
    TASKS_FINISHED.labels(task_type, status).inc()


class DatabaseCollector(registry.Collector):
    """Gauges read from the database at scrape time (cached :data:`CACHE_SECONDS`)."""

    def __init__(self, db: engine.Database, default_store: str,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.db = db
        self.default_store = default_store
        self.clock = clock
        self._lock = threading.Lock()
        self._cached: tuple[float, list[GaugeMetricFamily]] | None = None

    def collect(self) -> Iterator[GaugeMetricFamily]:
        with self._lock:
            now = self.clock()
            if self._cached is None or now - self._cached[0] >= CACHE_SECONDS:
                self._cached = (now, self._read())
            yield from self._cached[1]

    def _read(self) -> list[GaugeMetricFamily]:
        up = GaugeMetricFamily("glint_metrics_database_up", DATABASE_FAMILIES[
            "glint_metrics_database_up"])
        try:
            with self.db.reader() as session:
                tasks = session.execute(TASKS_BY_STATUS).all()
                stores = session.execute(IMAGES_BY_STORE).all()
        except sa.exc.SQLAlchemyError as exc:  # the scrape still answers, saying so
            LOG.warning("metrics: cannot read the database: %s", exc.__class__.__name__)
            up.add_metric([], 0)
            return [up]
        up.add_metric([], 1)
        return [*self._task_families(tasks), *self._store_families(stores), up]

    @staticmethod
    def _task_families(rows: Iterable[Any]) -> list[GaugeMetricFamily]:
        family = GaugeMetricFamily("glint_tasks", DATABASE_FAMILIES["glint_tasks"],
                                   labels=["status", "type"])
        for status, task_type, count in rows:
            family.add_metric([status, task_type], count)
        return [family]

    def _store_families(self, rows: Iterable[Any]) -> list[GaugeMetricFamily]:
        images = GaugeMetricFamily("glint_images", DATABASE_FAMILIES["glint_images"],
                                   labels=["store"])
        size = GaugeMetricFamily("glint_image_bytes", DATABASE_FAMILIES["glint_image_bytes"],
                                 labels=["store"])
        for name, (count, total) in store_totals(rows, self.default_store).items():
            images.add_metric([name], count)
            size.add_metric([name], total)
        return [images, size]


def store_totals(rows: Iterable[Any], default_store: str) -> dict[str, tuple[int, int]]:
    """Rows of :data:`IMAGES_BY_STORE` as ``{store: (images, bytes)}``, sorted by store."""
    totals: dict[str, tuple[int, int]] = {}
    for store, count, total in rows:  # None (a single store's rows) is the default store
        name = store or default_store
        seen = totals.get(name, (0, 0))
        totals[name] = (seen[0] + count, seen[1] + int(total or 0))
    return dict(sorted(totals.items()))


TASKS_BY_STATUS = (sa.select(models.Task.status, models.Task.type, sa.func.count())
                    .where(models.Task.deleted.is_(False))
                    .group_by(models.Task.status, models.Task.type))
IMAGES_BY_STORE = (sa.select(models.ImageLocation.store, sa.func.count(models.Image.id),
                              sa.func.sum(models.Image.size))
                    .join(models.Image, models.Image.id == models.ImageLocation.image_id)
                    .where(models.Image.deleted.is_(False))
                    .group_by(models.ImageLocation.store))


class Exposition:
    """The ``/metrics`` body of one process: its own metrics, or with prometheus-client's
    multiprocess mode those of every process sharing the directory, then the database's."""

    def __init__(self, collector: DatabaseCollector) -> None:
        self.database = registry.CollectorRegistry(auto_describe=False)
        self.database.register(collector)
        self.processes: registry.CollectorRegistry = prometheus_client.REGISTRY
        if os.environ.get(MULTIPROC_ENV):
            self.processes = registry.CollectorRegistry(auto_describe=False)
            multiprocess.MultiProcessCollector(self.processes)  # type: ignore[no-untyped-call]

    def render(self) -> bytes:
        return (prometheus_client.generate_latest(self.processes)
                + prometheus_client.generate_latest(self.database))


# The image cache's gauges (glint.cache.collector), read from its index when scraped.
CACHE_FAMILIES = {
    "glint_cache_images": "Images in this node's image cache.",
    "glint_cache_bytes": "Bytes of the images in this node's image cache.",
    "glint_cache_max_bytes": "The image cache's size limit (image_cache_max_size).",
    "glint_cache_queued": "Images queued for prefetch into this node's image cache.",
}


METRICS = (TASKS_CREATED, TASKS_FINISHED, TASK_DURATION, TASK_QUEUE_WAIT, TASK_RETRIES,
           LEASE_EXPIRIES, REAPER_ACTIONS, DATA_BYTES, CACHE_REQUESTS, CACHE_FILLS,
           CACHE_EVICTIONS, HTTP_REQUESTS, HTTP_DURATION)
_held_across_fork: list[Any] = []


def hold_locks_across_fork() -> None:
    """For a process that forks while its threads count (``glint worker --pool prefork``,
    whose parent's reaper and health port go on while Celery forks a child): each fork waits
    until no thread is inside a metric update, and the child gets those locks free.

    prometheus-client's locks are plain locks, and a fork copies them as they are: a child
    forked while a thread of the parent held one finds it held by a thread it does not have,
    and hangs at its first count. In multiprocess mode one lock serves every value of the
    process (it is the library's, reached through its class's closure); each labelled metric
    has another for its children. The library takes a metric's lock, then the value lock
    (making a child makes its value), and so do these hooks. Idempotent."""
    if _held_across_fork:
        return
    locks = [lock for lock in (getattr(metric, "_lock", None) for metric in METRICS) if lock]
    value_lock = inspect.getclosurevars(values.ValueClass.inc).nonlocals.get("lock")
    if value_lock is not None:  # multiprocess mode (MutexValue has a lock per value)
        locks.append(value_lock)
    _held_across_fork.extend(locks)

    def acquire() -> None:
        for lock in _held_across_fork:
            lock.acquire()

    def release() -> None:
        for lock in reversed(_held_across_fork):
            lock.release()

    os.register_at_fork(before=acquire, after_in_parent=release, after_in_child=release)


def names() -> set[str]:
    """Every metric name glint exposes, as scraped (``_total``, ``_bucket``... included)."""
    found = set(DATABASE_FAMILIES) | set(CACHE_FAMILIES)
    for metric in METRICS:
        for family in metric.describe():
            found.update(sample_name(family.name, family.type))
    return found


def sample_name(name: str, kind: str) -> set[str]:
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count")}
    return {name + suffix for suffix in suffixes.get(kind, ("",))}
