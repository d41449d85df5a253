"""A publish on a half-open broker connection ends in 503, not a request that hangs.

A broker whose host vanished (or a NAT entry dropped) leaves the API's connection open with
nobody on the other end. The loopback proxy stands in for that: frozen, it keeps the
connection and forwards nothing. Both brokers: Redis through the transport's socket timeout,
RabbitMQ through the publish's confirm and write timeouts.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import pytest

from glint import errors
from glint.executors.celery import CeleryExecutor
from glint.settings import Settings
from tests.integration.celery_support import BROKERS, own_queue
from tests.integration.tcpproxy import TcpProxy

TIMEOUT = 1.0
# Three attempts (the publish's retry policy) of one timeout each, and the pauses between them.
GIVES_UP_WITHIN = 3 * TIMEOUT + 1.5 + 5.0  # and room for a loaded machine


def _through(url: str, port: int) -> str:
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)
    host = f"127.0.0.1:{port}"
    return urlunsplit(parts._replace(netloc=f"{netloc[0]}@{host}" if len(netloc) == 2 else host))


@pytest.fixture(params=sorted(BROKERS))
def proxied(request: pytest.FixtureRequest) -> Iterator[tuple[CeleryExecutor, TcpProxy, str]]:
    url = BROKERS[request.param]
    target = urlsplit(url)
    with own_queue(url, "glint-halfopen") as queue, \
            TcpProxy((target.hostname or "127.0.0.1", target.port or 0)) as proxy:
        settings = Settings(executor="celery", broker_url=_through(url, proxy.port),
                            broker_publish_timeout=TIMEOUT, task_default_queue=queue)
        executor = CeleryExecutor.from_settings(lambda task_id: None, settings)
        yield executor, proxy, url
        executor.shutdown()


def _queued(url: str, queue: str) -> int:
    import kombu

    with kombu.Connection(url, connect_timeout=3) as connection:
        return int(connection.default_channel.queue_declare(queue, passive=True).message_count)


def test_a_publish_on_a_half_open_connection_gives_up_and_the_next_one_reconnects(
        proxied: tuple[CeleryExecutor, TcpProxy, str]) -> None:
    executor, proxy, url = proxied
    executor.submit("before")  # the connection is open and in use
    proxy.freeze()
    outcome: list[BaseException | None] = []

    def submit() -> None:
        try:
            executor.submit("lost")
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    publishing = threading.Thread(target=submit, daemon=True)
    publishing.start()
    publishing.join(GIVES_UP_WITHIN)
    assert outcome, f"the publish still hangs after {GIVES_UP_WITHIN} s"
    assert isinstance(outcome[0], errors.ServiceUnavailable), outcome
    assert "broker" in str(outcome[0])
    proxy.frozen = False  # the broker is reachable again, through a new connection
    executor.submit("after")
    assert _queued(url, executor.default_queue) == 2  # "before" and "after"; "lost" never arrived
