"""The private internals of libraries glint relies on, each checked by name.

glint reaches past the public API of four libraries where that API offers no way in: uvicorn's
httptools protocol (zero-copy downloads, glint/server/sendfile.py), httpx's transport and
httpcore's and h11's connection (the import network backend and reading bodies straight from
the socket, glint/scripts/fetch.py), and kombu's virtual-transport QoS (a failed ack gives its
prefetch slot back, glint/executors/celery.py). Each falls back quietly, or refuses, when an
internal moves; these tests fail loudly instead, naming the internal, so an upgrade past the
upper bounds in pyproject.toml shows what to look at.
"""

from __future__ import annotations

import inspect
import re

import httpcore
import httpx

from glint import settings as settings_mod
from glint import urlfilter
from glint.scripts import fetch
from glint.server import sendfile
from tests.httpserver import LocalServer


def test_uvicorn_httptools_protocol_has_what_sendfile_extends() -> None:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

    assert callable(getattr(HttpToolsProtocol, "_start_asgi_task", None)), (
        "uvicorn: HttpToolsProtocol._start_asgi_task is gone (glint.server.sendfile overrides it)")
    init = inspect.getsource(RequestResponseCycle.__init__)
    missing = [name for name in sendfile._CYCLE_STATE
               if not re.search(rf"self\.{name}\b[^=\n]*=", init)]
    assert missing == [], (f"uvicorn: RequestResponseCycle no longer sets {missing} "
                           "(glint.server.sendfile reads them; downloads would lose sendfile)")
    assert "expected_content_length" in inspect.getsource(RequestResponseCycle.send)


def test_httpx_transport_has_an_httpcore_pool_with_a_network_backend() -> None:
    pool = getattr(httpx.HTTPTransport(), "_pool", None)
    assert isinstance(pool, httpcore.ConnectionPool), (
        "httpx: HTTPTransport._pool is no httpcore.ConnectionPool (glint.scripts.fetch gives it "
        "glint's network backend, which checks the addresses imports connect to)")
    assert hasattr(pool, "_network_backend"), (
        "httpcore: ConnectionPool._network_backend is gone (glint.scripts.fetch sets it)")
    assert isinstance(fetch.transport()._pool._network_backend, fetch.Backend)


def test_an_import_body_is_read_from_the_socket_past_h11() -> None:
    """The attribute path from an httpx response to h11's connection, and h11's buffer."""
    settings = settings_mod.Settings(import_allowed_hosts=("127.0.0.1",))
    body = b"x" * 300_000
    with LocalServer() as server, fetch.client(settings) as http, fetch.open_url(
            http, server.serve("/disk.raw", body), urlfilter.UrlFilter.from_settings(settings),
            max_redirects=0) as response:
        state = response.stream
        for name in ("_stream", "_httpcore_stream", "_stream", "_connection", "_h11_state"):
            assert hasattr(state, name), (
                f"httpx/httpcore: {type(state).__module__}.{type(state).__name__} has no "
                f"{name} (glint.scripts.fetch._unread_body follows this path to h11)")
            state = getattr(state, name)
        assert hasattr(state, "trailing_data"), "h11: Connection.trailing_data is gone"
        sock, pending = fetch._unread_body(response)
        assert sock is not None and pending is not None
        read = b"".join(fetch._raw_body(response, len(body), 5.0))
    assert read == body


def test_kombu_virtual_qos_settles_acks_as_glint_wraps_them() -> None:
    """The bookkeeping glint calls when an ack fails: virtual.QoS.ack frees the message's
    prefetch slot (on kombu's in-memory transport, a virtual one as Redis's is)."""
    import kombu
    from kombu.transport import redis, virtual

    assert issubclass(redis.QoS, virtual.QoS), (
        "kombu: the Redis transport's QoS is no virtual.QoS (forget_failed_acks applies to it)")
    assert "requeue" in inspect.signature(virtual.QoS.reject).parameters, (
        "kombu: virtual.QoS.reject(delivery_tag, requeue) changed its signature")
    with kombu.Connection("memory://") as connection:
        qos = connection.default_channel.qos
        assert isinstance(qos, virtual.QoS)
        qos.prefetch_count = 1
        qos.append(kombu.Message(body=b"task-id", channel=connection.default_channel), "tag-1")
        assert not qos.can_consume(), "kombu: virtual.QoS.append no longer takes a slot"
        virtual.QoS.ack(qos, "tag-1")
        assert qos.can_consume(), (
            "kombu: virtual.QoS.ack no longer frees the message's prefetch slot "
            "(glint.executors.celery.forget_failed_acks calls it when an ack fails)")
