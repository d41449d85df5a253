"""The notifier contract and the event envelope."""

from __future__ import annotations

import dataclasses
import datetime
import os
import random
import uuid
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from glint.settings import Settings

INFO = "INFO"
ERROR = "ERROR"


@dataclasses.dataclass(frozen=True)
class Event:
    """One notification, shaped like OpenStack's (``event_type``, ``payload``, ``priority``)."""

    event_type: str
    payload: dict[str, Any]
    priority: str = INFO
    publisher_id: str = "image.glint"
    message_id: str = dataclasses.field(default_factory=lambda: message_id())
    timestamp: str = dataclasses.field(
        default_factory=lambda: datetime.datetime.now(datetime.UTC).strftime(
            "%Y-%m-%d %H:%M:%S.%f"))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# The ids' generator: glint's own, so that a ``random.seed(n)`` elsewhere in the process (a
# plugin, a test) cannot make ids repeat (consumers drop a message whose id they saw), and
# seeded again in a forked child, as ``random``'s own is (children must not repeat each other).
_ids = random.Random()
os.register_at_fork(after_in_child=_ids.seed)


def message_id() -> str:
    """A random (version 4) UUID for an event, from ``random`` rather than ``os.urandom``.

    An event's id tells messages apart; nobody needs to fail to guess it. ``uuid.uuid4()``
    reads ``os.urandom``, a system call that lets go of the GIL: a task makes three events,
    and in a busy ``glint serve`` (API threads, eight task threads) each let-go meant waiting
    for the GIL again, 9% of the task threads' samples in a 1000-task burst's profile."""
    return str(uuid.UUID(int=_ids.getrandbits(128), version=4))


class Notifier(Protocol):
    """Where events go. ``notify`` must not raise: a lost event never fails the caller's work.

    A notifier may also say which events it keeps, ``wants(event_type, priority) -> bool``
    (optional: without it every event is wanted); see :func:`wants`."""

    def notify(self, event: Event) -> None: ...


def wants(notifier: Notifier, event_type: str, priority: str = INFO) -> bool:
    """Whether ``notifier`` keeps an event of ``event_type``: a caller asks before it builds
    one. An event's payload, id and timestamp were a tenth of a task's CPU in a burst
    (BENCHMARKS.md), three events a task, and the default notifier (``log`` at ``warning``)
    drops all but failures."""
    asked = getattr(notifier, "wants", None)
    return True if asked is None else bool(asked(event_type, priority))


class NotifierClass(Protocol):
    """A ``glint.notifiers`` plugin: the class, built with its one factory."""

    def from_settings(self, settings: Settings) -> Notifier: ...


class Filtered:
    """Drops events named in ``disabled``: full types (``task.success``) or groups (``image``,
    ``image.member``)."""

    def __init__(self, inner: Notifier, disabled: Iterable[str]) -> None:
        self.inner = inner
        self.disabled = frozenset(disabled)

    def notify(self, event: Event) -> None:
        if self._disabled(event.event_type):
            return
        self.inner.notify(event)

    def after_fork(self) -> None:
        after_fork(self.inner)

    def wants(self, event_type: str, priority: str = INFO) -> bool:
        return not self._disabled(event_type) and wants(self.inner, event_type, priority)

    def _disabled(self, event_type: str) -> bool:
        parts = event_type.split(".")
        # "image" drops every image event, "image.member" only the membership ones (Glance).
        return any(".".join(parts[:i]) in self.disabled for i in range(1, len(parts) + 1))


def after_fork(notifier: Notifier) -> None:
    """In a forked child: let ``notifier`` drop what is the parent's, if it keeps anything
    (``after_fork()``, optional: a notifier plugin that holds no connection needs none)."""
    hook = getattr(notifier, "after_fork", None)
    if hook is not None:
        hook()
