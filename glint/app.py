"""The composition root: builds every part of glint from one Settings object.

Nothing below this module reads the environment or a global configuration; each part gets
what it needs through its constructor.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from glint import plugins
from glint.db import engine
from glint.db import tasks as task_rows
from glint.executors.base import Executor
from glint.images import staging
from glint.images.members import MemberService
from glint.images.service import ImageService
from glint.notifiers import base as notifiers
from glint.scripts.registry import Registry
from glint.settings import Settings
from glint.stores.base import Store
from glint.tasks import routing
from glint.tasks.reaper import Reaper
from glint.tasks.runner import Runner
from glint.tasks.service import TaskService

LOG = logging.getLogger(__name__)
CANCEL_GRACE = 10.0  # seconds a cancelled script gets to clean up at shutdown


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

    reaper: Reaper | None = None

    def start(self, recover: bool = True) -> None:
        """Deal with what a previous process left behind, resume pending tasks, start the reaper.

        ``recover`` (``glint serve``; not ``glint worker``) fails the tasks this process ran
        in-process and a crash cut off, and resubmits pending ones. Tasks of remote executors
        are the reaper's, on whichever node gets there first.
        """
        if recover:
            self._recover()
        if self.reaper is not None:
            self.reaper.start()

    def _recover(self) -> None:
        remote = any(getattr(e, "remote", False) for e in self.router.executors.values())
        cleanup = getattr(self.store, "remove_temporary_files", None)
        if cleanup is not None and not remote:  # a shared store holds other nodes' writes
            removed = cleanup()
            if removed:
                LOG.info("removed %d unfinished store writes", removed)
        staging.remove_residue(self.db, self.images.staging)
        for task_id in self.runner.recover(self._runs_locally):
            self.router.submit(task_id, self._task_type(task_id))

    def _runs_locally(self, task_type: str) -> bool:
        return not getattr(self.router.executor_for(task_type), "remote", False)

    def close(self, timeout: float | None = 30.0) -> None:
        """Stop taking tasks, let running ones finish (up to ``timeout``), release resources."""
        if self.reaper is not None:
            self.reaper.stop()
        self.router.shutdown(wait=True, timeout=timeout)
        # Scripts still running past the grace period are asked to stop (should_cancel()),
        # and given a moment to clean up before the database goes away.
        self.runner.stopping.set()
        self.router.shutdown(wait=True, timeout=CANCEL_GRACE)
        self.db.dispose()

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
          executor: str | None = None) -> Glint:
    """Build glint from ``settings``; the keyword arguments replace a part (tests, embedding).

    ``executor`` replaces the default executor's name (the ``executor`` setting); task types
    in ``executor_routes`` still run on the executors named there.
    """
    db = engine.Database(settings.effective_database_url)
    if store is None:
        store = plugins.load("glint.stores", settings.store)(settings.effective_store_path)
    if notifier is None:
        notifier = _notifier(plugins.load("glint.notifiers", settings.notifier), settings)
    notifier = notifiers.Filtered(notifier, settings.disabled_notifications)
    if registry is None:
        registry = Registry.load()
    images = ImageService(db, store, notifier, settings)
    runner = Runner(db, registry, images, store, notifier, settings)
    router = routing.build(runner.run, default=executor or settings.executor,
                           routes=settings.executor_routes, threads=settings.executor_threads,
                           task_types=registry.types, settings=settings)
    tasks = TaskService(db, registry, router, notifier, settings, runner)
    return Glint(settings=settings, db=db, store=store, notifier=notifier, registry=registry,
                 router=router, runner=runner, images=images,
                 members=MemberService(db, notifier, settings), tasks=tasks,
                 reaper=Reaper(runner, router, settings))


def _notifier(notifier_cls: Any, settings: Settings) -> notifiers.Notifier:
    """``cls.from_settings(settings)`` when the notifier has one (``messaging``), else ``cls()``."""
    from_settings = getattr(notifier_cls, "from_settings", None)
    made: notifiers.Notifier = from_settings(settings) if from_settings else notifier_cls()
    return made
