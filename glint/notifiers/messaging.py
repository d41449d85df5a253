"""Events published to RabbitMQ in oslo.messaging's notification envelope.

Each event goes to the topic exchange ``messaging_exchange`` (default ``glance``) with the
routing key ``<priority>.<event_type>`` (``info.task.success``), as::

    {"oslo.version": "2.0",
     "oslo.message": "{\\"message_id\\": ..., \\"publisher_id\\": \\"image.glint\\",
                       \\"event_type\\": \\"task.success\\", \\"priority\\": \\"INFO\\",
                       \\"payload\\": {...}, \\"timestamp\\": \\"2026-11-25 22:00:00.000000\\"}"}

so consumers written for OpenStack notifications can read it. ``notify`` never raises: a
broker that is down costs the event (logged), never the caller's work.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

from glint import errors
from glint.notifiers import base
from glint.settings import Settings

LOG = logging.getLogger(__name__)
CONNECT_TIMEOUT = 5.0  # seconds


def envelope(event: base.Event) -> dict[str, str]:
    """oslo.messaging's version 2.0 envelope around ``event``."""
    message = {"message_id": event.message_id, "publisher_id": event.publisher_id,
               "event_type": event.event_type, "priority": event.priority,
               "payload": event.payload, "timestamp": event.timestamp}
    return {"oslo.version": "2.0", "oslo.message": json.dumps(message, default=str)}


def routing_key(event: base.Event) -> str:
    return f"{event.priority.lower()}.{event.event_type}"


class MessagingNotifier:
    def __init__(self, url: str, exchange: str) -> None:
        try:
            import kombu
            from kombu import entity
        except ImportError as exc:
            raise errors.ConfigurationError(
                "the messaging notifier needs kombu: pip install 'glint[celery]'") from exc
        self.url = url
        self._kombu: Any = kombu
        exchange_cls: Any = entity.Exchange
        self._exchange: Any = exchange_cls(exchange, type="topic", durable=True)
        self._connection: Any = None
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> MessagingNotifier:
        return cls(settings.effective_messaging_url, settings.messaging_exchange)

    def notify(self, event: base.Event) -> None:
        try:
            with self._lock:
                self._publish(event)
        except Exception as exc:  # a lost event never fails the caller's work
            LOG.warning("could not publish notification %s (%s): %s", event.event_type,
                        event.message_id, exc)
            self._reset()

    def close(self) -> None:
        self._reset()

    def after_fork(self) -> None:
        """In a forked child: no connection yet, and a lock of its own. The connection is the
        parent's, and its lock may have been held by a parent thread publishing at the fork."""
        self._connection = None
        self._lock = threading.Lock()

    def _publish(self, event: base.Event) -> None:
        if self._connection is None:
            self._connection = self._kombu.Connection(
                self.url, connect_timeout=CONNECT_TIMEOUT,
                transport_options={"confirm_publish": True})
        producer = self._connection.Producer(serializer="json")
        producer.publish(envelope(event), exchange=self._exchange,
                         routing_key=routing_key(event), declare=[self._exchange],
                         delivery_mode=2, retry=True,
                         retry_policy={"max_retries": 1, "interval_start": 0})

    def _reset(self) -> None:
        with self._lock:
            if self._connection is not None:
                try:
                    self._connection.release()
                except Exception:
                    LOG.debug("closing the notification connection failed", exc_info=True)
                self._connection = None
