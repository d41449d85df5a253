"""Events dropped."""

from __future__ import annotations

from glint.notifiers import base


class NoopNotifier:
    def notify(self, event: base.Event) -> None:
        del event
