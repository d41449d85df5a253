"""A forked child (``glint worker --pool prefork``) drops what is its parent's.

The store sockets are checked across a real fork in tests/integration/test_object_stores.py,
the database engine in tests/integration/test_pool.py; here, what ``Glint.after_fork`` reaches
and what each part renews.
"""

from __future__ import annotations

import pathlib
from typing import Any

from glint.notifiers import base as notifier_base
from glint.notifiers import messaging
from glint.testing import MemoryNotifier
from tests.conftest import MakeGlint


class ForkAwareNotifier(MemoryNotifier):
    def __init__(self) -> None:
        super().__init__()
        self.forks = 0

    def after_fork(self) -> None:
        self.forks += 1


def test_after_fork_renews_the_engine_the_cache_index_and_the_notifier(
        make_glint: MakeGlint, tmp_path: pathlib.Path) -> None:
    notifier = ForkAwareNotifier()
    glint = make_glint(notifier=notifier, image_cache_enabled=True,
                       image_cache_dir=tmp_path / "cache")
    assert glint.cache is not None
    engine, index = glint.db.engine, glint.cache.index._db
    glint.after_fork()
    assert glint.db.engine is not engine
    assert glint.cache.index._db is not index
    assert glint.cache.index.get("no-such-image") is None  # the new connection works
    assert notifier.forks == 1  # reached through the filter that wraps it


def test_a_notifier_without_the_hook_is_left_alone(make_glint: MakeGlint) -> None:
    glint = make_glint()  # MemoryNotifier: nothing of the parent's to drop
    glint.after_fork()


def test_the_messaging_notifier_drops_the_parents_connection_and_lock() -> None:
    notifier = messaging.MessagingNotifier("amqp://guest:guest@127.0.0.1:1//", "glance")
    connection: Any = object()
    notifier._connection = connection
    notifier._lock.acquire()  # a parent thread was publishing at the fork
    notifier.after_fork()
    assert notifier._connection is None
    acquired = notifier._lock.acquire(timeout=1)
    assert acquired, "the child's lock is still the one held in the parent"
    notifier._lock.release()
    notifier_base.after_fork(notifier)  # the module function calls the same hook
