"""Credentials handed from the request that created a task to its script, in memory only.

A ``glance-download`` import reads an image from another Glance region *as the caller*: with
the caller's Keystone token, at the image endpoint the token's service catalog names (as Glance
does). glint never writes tokens to its database or its broker, so the API leaves them here, in
the memory of the process that took the request: its runner's :class:`Handoff` (``Runner.handoff``)
gives them to the script as ``ctx.credentials`` and drops them when the task ends.
That is why such tasks must run in that process (the ``thread`` or ``inline`` executor): the
import API refuses ``glance-download`` when ``api_image_import`` is routed elsewhere, and the
task is bound to that process's runner (:mod:`glint.tasks.binding`), so that a sibling API
worker of ``glint serve --workers N`` never claims it. A task whose process is gone is failed,
and a script that finds nothing here (the hand-off expired) fails saying so, leaving the image
queued for another try.
"""

from __future__ import annotations

import threading
import time

from glint.scripts.contract import Credentials

# Keystone's default token lifetime: after it the token is no use anyway.
DEFAULT_TTL = 3600.0


__all__ = ["DEFAULT_TTL", "Credentials", "Handoff"]


class Handoff:
    """Task id → credentials, until the task ends (:meth:`discard`) or ``ttl`` seconds pass."""

    def __init__(self, ttl: float = DEFAULT_TTL) -> None:
        self.ttl = ttl
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[float, Credentials]] = {}

    def put(self, task_id: str, credentials: Credentials) -> None:
        now = time.monotonic()
        with self._lock:
            self._entries = {key: entry for key, entry in self._entries.items()
                             if entry[0] > now}
            self._entries[task_id] = (now + self.ttl, credentials)

    def get(self, task_id: str) -> Credentials | None:
        """The task's credentials; kept for a re-run of the task until :meth:`discard`."""
        with self._lock:
            entry = self._entries.get(task_id)
        if entry is None or entry[0] <= time.monotonic():
            return None
        return entry[1]

    def discard(self, task_id: str) -> None:
        with self._lock:
            self._entries.pop(task_id, None)

