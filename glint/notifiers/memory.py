"""Events kept in a list, for tests and the script test kit."""

from __future__ import annotations

import threading

from glint.notifiers import base
from glint.settings import Settings


class MemoryNotifier:
    def __init__(self) -> None:
        self.events: list[base.Event] = []
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> MemoryNotifier:
        del settings
        return cls()

    def notify(self, event: base.Event) -> None:
        with self._lock:
            self.events.append(event)

    def types(self) -> list[str]:
        with self._lock:
            return [e.event_type for e in self.events]
