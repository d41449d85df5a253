"""The composition root: builds every part of glint from one Settings object.

Nothing below this module reads the environment or a global configuration; each part gets
what it needs through its constructor.
"""

from __future__ import annotations

import dataclasses
import logging

from glint import plugins
from glint.db import engine
from glint.executors.base import Executor
from glint.images.service import ImageService
from glint.notifiers import base as notifiers
from glint.scripts.registry import Registry
from glint.settings import Settings
from glint.stores.base import Store
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
    executor: Executor
    runner: Runner
    images: ImageService
    tasks: TaskService

    def start(self) -> None:
        """Deal with what a previous process left behind, then resume pending tasks."""
        cleanup = getattr(self.store, "remove_temporary_files", None)
        if cleanup is not None:
            removed = cleanup()
            if removed:
                LOG.info("removed %d unfinished store writes", removed)
        for task_id in self.runner.recover():
            self.executor.submit(task_id)

    def close(self, timeout: float | None = 30.0) -> None:
        """Stop taking tasks, let running ones finish (up to ``timeout``), release resources."""
        self.executor.shutdown(wait=True, timeout=timeout)
        # Scripts still running past the grace period are asked to stop (should_cancel()),
        # and given a moment to clean up before the database goes away.
        self.runner.stopping.set()
        self.executor.shutdown(wait=True, timeout=CANCEL_GRACE)
        self.db.dispose()


def build(settings: Settings, *, store: Store | None = None,
          notifier: notifiers.Notifier | None = None, registry: Registry | None = None,
          executor: str | None = None) -> Glint:
    """Build glint from ``settings``; the keyword arguments replace a part (tests, embedding)."""
    db = engine.Database(settings.effective_database_url)
    if store is None:
        store = plugins.load("glint.stores", settings.store)(settings.effective_store_path)
    if notifier is None:
        notifier = plugins.load("glint.notifiers", settings.notifier)()
    notifier = notifiers.Filtered(notifier, settings.disabled_notifications)
    if registry is None:
        registry = Registry.load()
    images = ImageService(db, store, notifier, settings)
    runner = Runner(db, registry, images, store, notifier, settings)
    executor_cls = plugins.load("glint.executors", executor or settings.executor)
    task_executor: Executor = executor_cls(runner.run, threads=settings.executor_threads)
    tasks = TaskService(db, registry, task_executor, notifier, settings)
    return Glint(settings=settings, db=db, store=store, notifier=notifier, registry=registry,
                 executor=task_executor, runner=runner, images=images, tasks=tasks)
