"""Events written to the log as JSON (the default)."""

from __future__ import annotations

import json
import logging

from glint.notifiers import base
from glint.settings import Settings

LOG = logging.getLogger("glint.notifications")


class LogNotifier:
    @classmethod
    def from_settings(cls, settings: Settings) -> LogNotifier:
        del settings
        return cls()

    def notify(self, event: base.Event) -> None:
        level = _level(event.priority)
        if not LOG.isEnabledFor(level):  # the JSON is most of an event's cost
            return
        LOG.log(level, "%s", json.dumps(event.to_dict(), default=str, sort_keys=True))

    def wants(self, event_type: str, priority: str = base.INFO) -> bool:
        """Only what the log level lets through: no event is built for nothing."""
        del event_type
        return LOG.isEnabledFor(_level(priority))


def _level(priority: str) -> int:
    return logging.ERROR if priority == base.ERROR else logging.INFO
