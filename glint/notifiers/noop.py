"""Events dropped."""

from __future__ import annotations

from glint.notifiers import base
from glint.settings import Settings


class NoopNotifier:
    @classmethod
    def from_settings(cls, settings: Settings) -> NoopNotifier:
        del settings
        return cls()

    def notify(self, event: base.Event) -> None:
        del event

    def wants(self, event_type: str, priority: str = base.INFO) -> bool:
        del event_type, priority
        return False
