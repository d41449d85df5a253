"""Events kept in a list, for tests and the script test kit."""

from __future__ import annotations

import threading

from glint.notifiers import base


class MemoryNotifier:
    def __init__(self) -> None:
        self.events: list[base.Event] = []
        self._lock = threading.Lock()

    def notify(self, event: base.Event) -> None:
        with self._lock:
            self.events.append(event)

    def types(self) -> list[str]:
        with self._lock:
            return [e.event_type for e in self.events]
