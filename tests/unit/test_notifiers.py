from __future__ import annotations

import json
import logging
import uuid

import pytest

from glint.notifiers import base
from glint.notifiers.log import LogNotifier
from glint.notifiers.memory import MemoryNotifier
from glint.notifiers.noop import NoopNotifier


@pytest.mark.parametrize("cls", [LogNotifier, MemoryNotifier, NoopNotifier])
def test_every_notifier_accepts_an_event(cls: type) -> None:
    cls().notify(base.Event("task.create", {"id": "x"}))


def test_each_event_has_its_own_version_4_uuid() -> None:
    ids = [base.Event("task.create", {}).message_id for _ in range(1000)]
    assert len(set(ids)) == len(ids)
    assert {uuid.UUID(one).version for one in ids} == {4}
    assert all(str(uuid.UUID(one)) == one for one in ids)  # the canonical form, as uuid4's


def test_memory_keeps_events_in_order() -> None:
    notifier = MemoryNotifier()
    notifier.notify(base.Event("task.create", {}))
    notifier.notify(base.Event("task.success", {}))
    assert notifier.types() == ["task.create", "task.success"]


def test_log_writes_json_envelope(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="glint.notifications"):
        LogNotifier().notify(base.Event("image.delete", {"id": "i"}, base.ERROR))
    record = caplog.records[-1]
    assert record.levelno == logging.ERROR
    body = json.loads(record.getMessage())
    assert body["event_type"] == "image.delete"
    assert body["payload"] == {"id": "i"}
    assert body["publisher_id"] == "image.glint"


def test_filtered_drops_full_types_and_groups() -> None:
    inner = MemoryNotifier()
    notifier = base.Filtered(inner, ["task.success", "image"])
    for event_type in ("task.create", "task.success", "image.create", "image.member.create"):
        notifier.notify(base.Event(event_type, {}))
    assert inner.types() == ["task.create"]


def test_filtered_drops_nested_groups() -> None:
    inner = MemoryNotifier()
    notifier = base.Filtered(inner, ["image.member"])
    for event_type in ("image.member.create", "image.member.delete", "image.update",
                       "image.membership"):
        notifier.notify(base.Event(event_type, {}))
    assert inner.types() == ["image.update", "image.membership"]


def test_messaging_envelope_and_routing_key() -> None:
    import json

    from glint.notifiers import base as notifier_base
    from glint.notifiers import messaging

    event = notifier_base.Event("image.create", {"id": "i"})
    body = messaging.envelope(event)
    assert body["oslo.version"] == "2.0"
    assert json.loads(body["oslo.message"]) == {
        "message_id": event.message_id, "publisher_id": "image.glint",
        "event_type": "image.create", "priority": "INFO", "payload": {"id": "i"},
        "timestamp": event.timestamp}
    assert messaging.routing_key(event) == "info.image.create"


def test_messaging_never_raises_when_the_broker_is_down() -> None:
    from glint.notifiers import base as notifier_base
    from glint.notifiers import messaging

    notifier = messaging.MessagingNotifier("amqp://guest:guest@127.0.0.1:1//", "glance")
    notifier.notify(notifier_base.Event("image.create", {"id": "i"}))  # logged, not raised
    notifier.close()


def test_event_ids_do_not_repeat_when_random_is_seeded_or_the_process_forks() -> None:
    import os
    import random

    from glint.notifiers import base as notifier_base

    random.seed(7)
    first = notifier_base.message_id()
    random.seed(7)
    assert notifier_base.message_id() != first
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.write(write, notifier_base.message_id().encode())
        os._exit(0)
    os.close(write)
    mine = notifier_base.message_id()
    os.waitpid(pid, 0)
    with os.fdopen(read) as pipe:
        assert pipe.read() != mine

def test_every_event_is_wanted_from_a_notifier_that_does_not_say() -> None:
    assert base.wants(MemoryNotifier(), "task.create") is True


def test_noop_wants_nothing() -> None:
    assert base.wants(NoopNotifier(), "task.failure", base.ERROR) is False


def test_log_wants_what_its_level_lets_through() -> None:
    logger = logging.getLogger("glint.notifications")
    before = logger.level
    try:
        logger.setLevel(logging.WARNING)
        assert base.wants(LogNotifier(), "task.success", base.INFO) is False
        assert base.wants(LogNotifier(), "task.failure", base.ERROR) is True
        logger.setLevel(logging.INFO)
        assert base.wants(LogNotifier(), "task.success", base.INFO) is True
    finally:
        logger.setLevel(before)


def test_filtered_wants_neither_a_disabled_event_nor_one_its_inner_notifier_drops() -> None:
    filtered = base.Filtered(MemoryNotifier(), ["image", "task.success"])
    assert not base.wants(filtered, "image.member.create")
    assert not base.wants(filtered, "task.success")
    assert base.wants(filtered, "task.failure", base.ERROR)
    assert not base.wants(base.Filtered(NoopNotifier(), []), "task.failure", base.ERROR)
