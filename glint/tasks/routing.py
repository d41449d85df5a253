"""Which executor runs which task type: the ``executor_routes`` setting, resolved at start-up.

Every task type runs on the default executor (the ``executor`` setting) unless
``executor_routes`` names another executor for it. Each executor named anywhere is built once;
a name that no installed executor answers to stops glint from starting, and so does a key of
``executor_routes`` or ``task_queues`` that is not a task type (a setting written below a TOML
table header becomes one of its keys: ``notifier = "messaging"`` under ``[task_queues]``).
"""

from __future__ import annotations

import importlib.metadata
import logging
import time
from collections.abc import Iterable, Mapping

from glint import errors, plugins
from glint.executors import base
from glint.settings import Settings

NAMESPACE = "glint.executors"

LOG = logging.getLogger(__name__)


class Router:
    """Executors by name, and the task types routed to each; other types go to ``default``."""

    def __init__(self, executors: Mapping[str, base.Executor], routes: Mapping[str, str],
                 default: str) -> None:
        unknown = sorted({default, *routes.values()} - set(executors))
        if unknown:
            raise errors.ConfigurationError(f"no executor built for {', '.join(unknown)}")
        self.executors = dict(executors)
        self.routes = dict(routes)
        self.default = default

    def executor_for(self, task_type: str) -> base.Executor:
        return self.executors[self.routes.get(task_type, self.default)]

    def submit(self, task_id: str, task_type: str) -> None:
        """Hand the task to the executor its type routes to."""
        self.executor_for(task_type).submit(task_id, task_type)

    def submit_later(self, task_id: str, task_type: str, delay: float) -> None:
        """Hand the task over in ``delay`` seconds (a retry after its backoff): through the
        executor's own ``submit_later`` where it has one (the broker's delayed delivery),
        else from a timer of this process (:class:`glint.executors.base.ExecutorBase`)."""
        self.executor_for(task_type).submit_later(task_id, task_type, delay)

    @property
    def remote(self) -> bool:
        """Whether any executor runs its tasks in other processes (``Executor.remote``)."""
        return any(executor.remote for executor in self.executors.values())

    def runs_locally(self, task_type: str) -> bool:
        """Whether tasks of ``task_type`` run in this process."""
        return not self.executor_for(task_type).remote

    def shutdown(self, wait: bool = True, timeout: float | None = None) -> None:
        """Stop every executor taking tasks, then wait (``timeout`` in all) for running ones."""
        for executor in self.executors.values():
            executor.shutdown(wait=False)
        if not wait:
            return
        deadline = None if timeout is None else time.monotonic() + timeout
        for executor in self.executors.values():
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            executor.shutdown(wait=True, timeout=left)


def check_task_types(settings: Settings, task_types: Iterable[str]) -> None:
    """ConfigurationError naming each key of ``executor_routes`` and ``task_queues`` that is
    not one of ``task_types`` (every installed script's, broken ones included); none given:
    a maintenance command, which loads no scripts."""
    known = set(task_types)
    if not known:
        return
    for setting in ("executor_routes", "task_queues"):
        unknown = sorted(set(getattr(settings, setting)) - known)
        if unknown:
            raise errors.ConfigurationError(
                f"setting {setting} names {', '.join(map(repr, unknown))}, which "
                f"{'is not a task type' if len(unknown) == 1 else 'are not task types'} "
                f"(installed task types: {', '.join(sorted(known))}); its keys are task types")


def build(run: base.RunTask, *, default: str, routes: Mapping[str, str], threads: int,
          settings: Settings) -> Router:
    """Build each executor named by ``default`` and ``routes`` (once each) around ``run``.

    Raises ConfigurationError naming the setting when an executor is not installed.
    """
    executors: dict[str, base.Executor] = {}
    executors[default] = _make(_load(default, "setting executor"), run, threads, settings)
    for task_type, name in sorted(routes.items()):
        if name not in executors:
            where = f"setting executor_routes (task type {task_type!r})"
            executors[name] = _make(_load(name, where), run, threads, settings)
    return Router(executors, routes, default)


def _make(executor_cls: base.ExecutorClass, run: base.RunTask, threads: int,
          settings: Settings) -> base.Executor:
    return executor_cls.from_settings(run, settings, threads=threads)


def _load(name: str, where: str) -> base.ExecutorClass:
    try:
        executor_cls: base.ExecutorClass = plugins.load(NAMESPACE, name)
    except errors.ConfigurationError:
        installed = ", ".join(sorted({ep.name for ep in
                                      importlib.metadata.entry_points(group=NAMESPACE)}))
        raise errors.ConfigurationError(
            f"{where} names executor {name!r}, which is not installed "
            f"(installed executors: {installed or 'none'})") from None
    return executor_cls
