"""The composition root: builds every part of glint from one Settings object.

Nothing below this module reads the environment or a global configuration; each part gets
what it needs through its constructor.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import threading
from collections.abc import Callable, Iterator
from typing import cast

import sqlalchemy as sa

from glint import health as health_checks
from glint import metrics as metrics_mod
from glint import plugins
from glint import policy as policies
from glint import settings as settings_mod
from glint.cache.cache import ImageCache
from glint.cache.collector import CacheCollector
from glint.cache.pruner import Pruner
from glint.dashboard import Dashboard
from glint.db import engine
from glint.db import tasks as task_rows
from glint.executors.base import Executor
from glint.gate import ImageGate
from glint.images import staging
from glint.images.locations import Locations
from glint.images.members import MemberService
from glint.images.service import ImageService
from glint.images.uploads import Uploads
from glint.imports.service import Imports
from glint.metadefs.service import MetadefService
from glint.notifiers import base as notifiers
from glint.scripts.registry import Registry
from glint.settings import Settings
from glint.stores import adoption, multi
from glint.stores.base import Store
from glint.tasks import routing
from glint.tasks import runner as runners
from glint.tasks.handoff import Handoff
from glint.tasks.reaper import Reaper
from glint.tasks.recovery import Role
from glint.tasks.runner import Runner
from glint.tasks.service import TaskService

LOG = logging.getLogger(__name__)
CANCEL_GRACE = 10.0  # seconds a cancelled script gets to clean up at shutdown
RECOVERY_RETRY = 2.0  # seconds between start-up recovery attempts while the database is down
DATABASE_DOWN = (sa.exc.OperationalError, sa.exc.InterfaceError)
# Set by the supervisor of `glint serve --workers N` for its API workers: its serve id.
SERVE_ID_ENV = "GLINT_SERVE_ID"


@dataclasses.dataclass
class Glint:
    settings: Settings
    db: engine.Database
    store: Store
    notifier: notifiers.Notifier
    registry: Registry
    router: routing.Router
    runner: Runner
    images: ImageService
    members: MemberService
    tasks: TaskService
    policy: policies.Policy
    uploads: Uploads
    locations: Locations
    imports: Imports
    metadefs: MetadefService
    dashboard: Dashboard
    reaper: Reaper
    health: health_checks.Health
    metrics: metrics_mod.Exposition
    cache: ImageCache | None = None  # this node's image cache (glint.cache), when on
    pruner: Pruner | None = None
    # An API worker of `glint serve --workers N`: its supervisor did the start-up recovery.
    api_worker: bool = False
    _recovering: threading.Thread | None = dataclasses.field(default=None, repr=False)
    _closing: threading.Event = dataclasses.field(default_factory=threading.Event, repr=False)

    def start(self, recover: bool = True) -> None:
        """Deal with what a previous process left behind, resume pending tasks, start the reaper.

        ``recover`` (``glint serve``; not ``glint worker``) fails the tasks this process ran
        in-process and a crash cut off, and resubmits pending ones. Tasks of remote executors
        are the reaper's, on whichever node gets there first. With the database down, start
        anyway (requests that need it answer 503) and recover on a thread once it is back.

        An API worker of ``glint serve --workers N`` only resubmits pending tasks: its
        supervisor did the rest (:meth:`recover`) before starting any, and one that is started
        again, after another died, must not touch its live siblings' tasks and writes. Those
        of the one that died are the reaper's (expired leases) and the sweep's (old writes).
        """
        self._start_recovery(self.role if recover else Role.WORKER)
        self.reaper.start()
        if self.pruner is not None:
            self.pruner.start()

    @property
    def role(self) -> Role:
        """This process's part in recovery, when it serves the API (``glint serve``)."""
        return Role.API_WORKER if self.api_worker else Role.SERVE

    def check_stores(self) -> None:
        """ConfigurationError when the stores as configured cannot read images already
        stored: multi-store turned on over a single store's images without ``backend_paths``
        for the old store (:mod:`glint.stores.adoption`). Run before serving or working."""
        adoption.check(self.db, self.settings, multi.of(self.store))

    def recover(self) -> None:
        """The start-up recovery of ``glint serve --workers N``, in its supervisor before it
        starts the API workers: no write or task of this node is running, so unfinished writes
        go and ``processing`` in-process tasks fail. Pending tasks are left to the API workers.
        With the database down, the tasks are dealt with on a thread once it is back; they
        spare the API workers' tasks by their lease owner's serve id (``runner.serve_id``).
        """
        self._start_recovery(Role.SUPERVISOR)

    def _start_recovery(self, role: Role) -> None:
        """What ``role`` does at start-up (glint.tasks.recovery.Role)."""
        if role.fails_interrupted:
            self._remove_unfinished_writes()
            self._once_database_is_up(self._recover if role.resumes_pending
                                      else self._fail_interrupted)
        elif role.resumes_pending:
            self._once_database_is_up(self._resume)

    def _remove_unfinished_writes(self) -> None:
        """Before serving, no write of this process is running: its temporary files can go."""
        for group in ([] if self.router.remote else [self.store]) + [self.images.staging]:
            for store in multi.of(group).backends.values():
                # An object store is shared by every node: the reaper sweeps it, by age.
                removed = 0 if store.shared else store.remove_temporary_files()
                if removed:
                    LOG.info("removed %d unfinished writes from the %s store", removed, store.name)

    def _recover(self) -> None:
        self._submit(self._fail_interrupted())

    def _fail_interrupted(self) -> list[str]:
        """Remove staging residue and fail interrupted tasks; returns the pending ones."""
        staging.remove_residue(self.db, cast(Store, _Settled(self.images.staging)))
        return self.runner.recover(self._runs_locally)

    def _resume(self) -> None:
        self._submit(self.runner.pending(self._runs_locally))

    def _submit(self, task_ids: list[str]) -> None:
        for task_id in task_ids:
            self.router.submit(task_id, self._task_type(task_id))

    def _once_database_is_up(self, step: Callable[[], object]) -> None:
        """Run ``step`` now, or on a thread once the database answers."""
        try:
            step()
        except DATABASE_DOWN as exc:
            LOG.warning("the database is unreachable (%s); start-up recovery will run "
                        "when it is back", _first_line(exc))
            self._recovering = threading.Thread(target=self._recover_when_back, args=(step,),
                                                name="glint-recovery", daemon=True)
            self._recovering.start()

    def _recover_when_back(self, step: Callable[[], object]) -> None:
        while not self._closing.wait(RECOVERY_RETRY):
            try:
                step()
            except DATABASE_DOWN:
                continue
            except Exception:
                LOG.exception("start-up recovery failed")
                return
            LOG.info("the database is back; start-up recovery done")
            return

    def _runs_locally(self, task_type: str) -> bool:
        return self.router.runs_locally(task_type)

    def close(self, timeout: float | None = 30.0) -> None:
        """Stop taking tasks, let running ones finish (up to ``timeout``), release resources."""
        self._closing.set()
        if self._recovering is not None:
            self._recovering.join(timeout=10)
        self.reaper.stop()
        if self.pruner is not None:
            self.pruner.stop()
        self.router.shutdown(wait=True, timeout=timeout)
        # Scripts still running past the grace period are asked to stop (should_cancel()),
        # and given a moment to clean up before the database goes away.
        self.runner.stopping.set()
        self.router.shutdown(wait=True, timeout=CANCEL_GRACE)
        if self.cache is not None:
            self.cache.close()
        self.db.dispose()

    def after_fork(self) -> None:
        """In a forked child (``glint worker --pool prefork``): connections, sessions and locks
        of its own, before it runs a task.

        The parent goes on using its own (the reaper, the health port) while Celery forks
        children: a child that used the parent's pooled database connection, store socket or
        notification connection would interleave its requests with the parent's on one
        socket, and a lock a parent thread held at the fork would stay held in the child."""
        self.db.after_fork()
        for backend in multi.of(self.store).backends.values():
            hook = getattr(backend, "after_fork", None)  # a store plugin may keep nothing
            if hook is not None:
                hook()
        notifiers.after_fork(self.notifier)
        if self.cache is not None:
            self.cache.after_fork()

    @property
    def executor(self) -> Executor:
        """The default executor: it runs every task type ``executor_routes`` does not route."""
        return self.router.executors[self.router.default]

    @executor.setter
    def executor(self, executor: Executor) -> None:
        self.router.executors[self.router.default] = executor

    def _task_type(self, task_id: str) -> str:
        with self.db.reader() as session:
            task = task_rows.get_any(session, task_id)
            return task.type if task is not None else ""


def build(settings: Settings, *, store: Store | None = None,
          notifier: notifiers.Notifier | None = None, registry: Registry | None = None,
          executor: str | None = None, supervisor: str | None = None) -> Glint:
    """Build glint from ``settings``; the keyword arguments replace a part (tests, embedding).

    ``executor`` replaces the default executor's name (the ``executor`` setting); task types
    in ``executor_routes`` still run on the executors named there. ``supervisor`` (a serve
    id) builds an API worker of that ``glint serve --workers N`` supervisor.
    """
    db = engine.Database(settings.effective_database_url)
    if store is None and settings.enabled_backends:
        store = multi.from_settings(settings)
    elif store is None:
        store = multi.open_store(settings, settings.store, settings.effective_store_path)
    if notifier is None:
        notifier_cls: notifiers.NotifierClass = plugins.load("glint.notifiers", settings.notifier)
        notifier = notifier_cls.from_settings(settings)
    notifier = notifiers.Filtered(notifier, settings.disabled_notifications)
    if registry is None:
        registry = Registry.load()
    routing.check_task_types(settings, [*registry.types, *(b.type for b in registry.broken)])
    policy = policies.Policy.from_settings(settings, registry.types)
    images = ImageService(db, store, notifier, settings, staging.area(settings), policy)
    image_gate = ImageGate.from_settings(settings)
    locations = Locations(images, db, notifier)
    cache = _cache(settings)
    runner = Runner(db, registry, images, store, notifier, settings,
                    owner=runners.lease_owner(supervisor), image_gate=image_gate,
                    handoff=Handoff(), locations=locations, image_cache=cache)
    router = routing.build(runner.run, default=executor or settings.executor,
                           routes=settings.executor_routes, threads=settings.executor_threads,
                           settings=settings)
    runner.resubmit = router.submit_later
    tasks = TaskService(db, registry, router, notifier, settings, runner, policy)
    reaper = Reaper(runner, router, settings,
                    role=Role.API_WORKER if supervisor is not None else Role.SERVE)
    exposition = metrics_mod.Exposition(metrics_mod.DatabaseCollector(db, multi.of(store).default))
    if cache is not None:
        exposition.database.register(CacheCollector(cache))
    return Glint(settings=settings, db=db, store=store, notifier=notifier, registry=registry,
                 router=router, runner=runner, images=images,
                 members=MemberService(db, notifier, settings, policy), tasks=tasks,
                 policy=policy,
                 uploads=Uploads(images, notifier, settings, image_gate),
                 locations=locations, imports=Imports(images, tasks, db),
                 metadefs=MetadefService(db, policy),
                 dashboard=Dashboard(db, tasks, multi.of(store).default), reaper=reaper,
                 health=health(settings, db, store, reaper, executor or settings.executor),
                 metrics=exposition, api_worker=supervisor is not None, cache=cache,
                 pruner=(Pruner(cache, db, settings.reaper_interval) if cache is not None
                         else None))


def _cache(settings: Settings) -> ImageCache | None:
    """This node's image cache, its index rebuilt from what is on disk."""
    cache = ImageCache.from_settings(settings)
    if cache is not None:
        dropped = cache.rebuild()
        if dropped:
            LOG.info("image cache: %d files not trusted at start-up were removed", dropped)
    return cache


def health(settings: Settings, db: engine.Database, store: Store, reaper: Reaper | None,
           executor: str) -> health_checks.Health:
    """The health checks of a process with these parts (glint.health)."""
    checks = {"database": health_checks.database_check(db, _migration_head),
              "store": health_checks.store_check(multi.of(store).backends)}
    if "celery" in {executor, *settings.executor_routes.values()}:
        checks["broker"] = health_checks.broker_check(settings.broker_url)
    if reaper is not None and settings.reaper_interval > 0:
        checks["reaper"] = health_checks.reaper_check(
            lambda: reaper.last_pass, lambda: reaper.running, settings.reaper_interval)
    return health_checks.Health(checks, settings.healthcheck_disable_file)


@functools.cache
def _migration_head() -> str | None:
    from glint.db import migrate

    return migrate.head()


def build_api_worker() -> Glint:
    """The glint of one API worker of ``glint serve --workers N``, in a process its
    supervisor started (uvicorn's app factory, :func:`glint.server.processes.create_api_worker`).

    Its settings come from the same places as the supervisor's, ``$GLINT_CONFIG`` and the
    ``GLINT_*`` variables (the supervisor put its command-line overrides there), and its
    leases carry the supervisor's serve id (``$GLINT_SERVE_ID``).
    """
    return build(settings_mod.load(), supervisor=os.environ[SERVE_ID_ENV])


class _Settled:
    """The staging area without its unfinished writes: they were removed before serving, and
    those there now are uploads under way (recovery may run late, once the database is up).
    What ``staging.remove_residue`` uses of a store, and no ``remove_temporary_files``."""

    def __init__(self, area: Store) -> None:
        self.area = area

    def locations(self) -> Iterator[str]:
        return self.area.locations()

    def delete(self, location: str) -> None:
        self.area.delete(location)

    def remove_temporary_files(self, older_than: float | None = None) -> int:
        return 0  # removed before serving (see above)


def _first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)
    return (str(orig or exc).strip().splitlines() or [""])[0]
