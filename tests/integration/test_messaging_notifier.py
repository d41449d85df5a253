"""The messaging notifier on a real RabbitMQ: a kombu consumer reads OpenStack's envelope."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from typing import Any

import pytest

from glint.notifiers import base
from glint.notifiers.messaging import MessagingNotifier
from tests.integration.celery_support import BROKERS, require_reachable

URL = BROKERS["rabbitmq"]


@pytest.fixture
def exchange() -> Iterator[str]:
    require_reachable(URL)
    name = f"glint-it-notifications-{secrets.token_hex(4)}"
    yield name
    import kombu

    with kombu.Connection(URL, connect_timeout=3) as connection:
        kombu.Exchange(name, type="topic")(connection.default_channel).delete()


def test_events_arrive_in_the_oslo_envelope_with_priority_routing_keys(exchange: str) -> None:
    import kombu

    with kombu.Connection(URL, connect_timeout=3) as connection:
        topic = kombu.Exchange(exchange, type="topic", durable=True)
        queue = kombu.Queue(f"{exchange}-errors", topic, routing_key="error.#", exclusive=True)
        bound = queue(connection.default_channel)
        bound.declare()
        notifier = MessagingNotifier(URL, exchange)
        notifier.notify(base.Event("task.success", {"id": "t1"}))  # info: not bound here
        notifier.notify(base.Event("task.failure", {"id": "t2", "message": "no"}, base.ERROR))
        notifier.close()
        message = _get(bound)
        assert message.delivery_info["routing_key"] == "error.task.failure"
        body: dict[str, Any] = message.decode()
        assert body["oslo.version"] == "2.0"
        inner = json.loads(body["oslo.message"])
        assert {k: inner[k] for k in ("event_type", "priority", "publisher_id", "payload")} == {
            "event_type": "task.failure", "priority": "ERROR", "publisher_id": "image.glint",
            "payload": {"id": "t2", "message": "no"}}
        assert inner["message_id"] and inner["timestamp"]
        assert bound.get() is None  # the info event went to its own routing key


def _get(queue: Any) -> Any:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        message = queue.get(no_ack=True)
        if message is not None:
            return message
        time.sleep(0.05)
    raise AssertionError("no notification arrived")
