"""What an import may reach: loopback targets refused end to end, private and metadata addresses
refused with name resolution stubbed and connecting patched to fail the test. No test here
sends a packet off loopback."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from glint import addresses, app, errors
from glint.context import RequestContext
from glint.db import models
from glint.scripts import fetch
from glint.stores.memory import MemoryStore
from tests.conftest import MakeGlint
from tests.httpserver import LocalServer

DATA = os.urandom(100_000)
_real_getaddrinfo = socket.getaddrinfo


def _input(url: str) -> dict[str, Any]:
    return {"import_from": url, "import_from_format": "raw",
            "image_properties": {"name": "imported"}}


def _run(glint: app.Glint, ctx: RequestContext, url: str) -> models.Task:
    task = glint.tasks.create(ctx, "import", _input(url))
    return glint.tasks.get(ctx, task.id)


def _assert_nothing_left(glint: app.Glint) -> None:
    with glint.db.reader() as session:
        images = list(session.scalars(sa.select(models.Image)))
    assert [i for i in images if not i.deleted] == []
    assert isinstance(glint.store, MemoryStore) and glint.store.blobs == {}


def _assert_refused_at_create(glint: app.Glint, ctx: RequestContext, url: str,
                              message: str) -> None:
    with pytest.raises(errors.BadRequest) as caught:
        glint.tasks.create(ctx, "import", _input(url))
    assert message in caught.value.message
    _assert_nothing_left(glint)


@pytest.fixture
def target() -> Iterator[LocalServer]:
    """A server on 127.0.0.2, loopback but never an allowed host: it must get no request."""
    with LocalServer("127.0.0.2") as server:
        server.serve("/image", DATA)
        yield server


@pytest.fixture
def target6() -> Iterator[LocalServer]:
    with LocalServer("::1") as server:
        server.serve("/image", DATA)
        yield server


@pytest.fixture
def no_dialling(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Make every outgoing connection fail the test (and record where it was going)."""
    dialled: list[Any] = []

    def refuse(*args: Any, **kwargs: Any) -> Any:
        dialled.append(args)
        pytest.fail(f"an import dialled {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    return dialled


def _resolve_as(monkeypatch: pytest.MonkeyPatch, names: dict[str, list[str]]) -> list[str]:
    """Stub name resolution: ``names`` maps a host to the addresses it resolves to."""
    asked: list[str] = []

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host not in names:
            return _real_getaddrinfo(host, port, *args, **kwargs)
        asked.append(host)
        return [(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "",
                 (a, port)) for a in names[host]]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return asked


# -- loopback targets, end to end -------------------------------------------------------------


@pytest.mark.parametrize("url, message", [
    ("http://127.0.0.2:{port}/image", "'127.0.0.2' (port {port}) is not in the allowed hosts"),
    ("http://[::1]:{port6}/image", "'::1' (port {port6}) is not in the allowed hosts"),
    ("http://2130706433:{port}/image", "numeric address in a non-standard form"),
    ("http://0x7f.1:{port}/image", "numeric address in a non-standard form"),
    ("http://0177.0.0.2:{port}/image", "numeric address in a non-standard form"),
    ("http://localhost:{port}/image", "'localhost' (port {port}) is not in the allowed hosts"),
])
def test_loopback_targets_off_the_allow_list_are_refused_at_create(
        make_glint: MakeGlint, ctx: RequestContext, target: LocalServer, target6: LocalServer,
        url: str, message: str) -> None:
    glint = make_glint()  # the test settings allow 127.0.0.1 only
    ports = {"port": target.port, "port6": target6.port}
    _assert_refused_at_create(glint, ctx, url.format(**ports), message.format(**ports))
    assert target.requests == [] and target6.requests == []


@pytest.mark.parametrize("url, message", [
    ("http://127.0.0.2:{port}/image", "'127.0.0.2' is a loopback address"),
    ("http://[::1]:{port6}/image", "'::1' is a loopback address"),
    ("http://[::ffff:127.0.0.2]:{port}/image", "is a loopback address"),
    ("http://[2002:7f00:2::1]:{port}/image", "a loopback address carried in an IPv6 address"),
    ("http://0.0.0.0:{port}/image", "is an unspecified address"),
])
def test_without_an_allow_list_loopback_addresses_are_refused(
        make_glint: MakeGlint, ctx: RequestContext, target: LocalServer, target6: LocalServer,
        url: str, message: str) -> None:
    glint = make_glint(import_allowed_hosts=(), import_allowed_ports=())
    ports = {"port": target.port, "port6": target6.port}
    _assert_refused_at_create(glint, ctx, url.format(**ports), message)
    assert target.requests == [] and target6.requests == []


def test_a_name_resolving_to_loopback_is_refused_when_connecting(
        make_glint: MakeGlint, ctx: RequestContext, http_server: LocalServer) -> None:
    glint = make_glint(import_allowed_hosts=(), import_allowed_ports=())
    url = http_server.serve("/image", DATA).replace("127.0.0.1", "localhost")
    task = _run(glint, ctx, url)
    assert task.status == "failure"
    assert "'localhost' resolves to 127.0.0.1, which is a loopback address" in task.message
    assert "import_allowed_hosts" in task.message
    assert http_server.requests == []
    _assert_nothing_left(glint)


@pytest.mark.parametrize("location", [
    "http://127.0.0.2:{port}/image", "http://[::1]:{port6}/image",
    "http://2130706433:{port}/image", "http://0x7f.0.0.2:{port}/image",
    "http://localhost:{port}/image", "http://[::ffff:7f00:2]:{port}/image",
])
def test_a_redirect_from_an_allowed_host_to_loopback_is_not_followed(
        make_glint: MakeGlint, ctx: RequestContext, http_server: LocalServer,
        target: LocalServer, target6: LocalServer, location: str) -> None:
    glint = make_glint()
    location = location.format(port=target.port, port6=target6.port)
    task = _run(glint, ctx, http_server.redirect("/start", location))
    assert task.status == "failure"
    assert f"Redirect to {location} refused" in task.message
    assert [r.path for r in http_server.requests] == ["/start"]
    assert target.requests == [] and target6.requests == []
    _assert_nothing_left(glint)


# -- ports -------------------------------------------------------------------------------------


def test_ports_off_the_allow_list_are_refused(make_glint: MakeGlint, ctx: RequestContext) -> None:
    glint = make_glint(import_allowed_hosts=())
    _assert_refused_at_create(glint, ctx, "http://images.test:8080/x",
                              "port 8080 is not allowed (allowed: 80, 443")


def test_an_allowed_host_may_pin_its_port(make_glint: MakeGlint, ctx: RequestContext,
                                          http_server: LocalServer) -> None:
    url = http_server.serve("/image", DATA)
    pinned = make_glint(import_allowed_hosts=(f"127.0.0.1:{http_server.port}",))
    assert _run(pinned, ctx, url).status == "success"
    other = make_glint(import_allowed_hosts=(f"127.0.0.1:{http_server.port + 1}",))
    with pytest.raises(errors.BadRequest, match="is not in the allowed hosts"):
        other.tasks.create(ctx, "import", _input(url))


def test_an_allowed_network_admits_its_addresses(make_glint: MakeGlint, ctx: RequestContext,
                                                 http_server: LocalServer) -> None:
    glint = make_glint(import_allowed_hosts=("127.0.0.0/30",))
    assert _run(glint, ctx, http_server.serve("/image", DATA)).status == "success"
    with pytest.raises(errors.BadRequest, match="not in the allowed hosts"):
        glint.tasks.create(ctx, "import", _input("http://127.0.0.4/x"))


# -- private, link-local and metadata addresses: stubbed resolution, no dialling ------------


@pytest.mark.parametrize("address, reason", [
    ("10.1.2.3", "a private address"),
    ("172.16.0.1", "a private address"),
    ("192.168.1.1", "a private address"),
    ("169.254.169.254", "an instance-metadata address"),
    ("169.254.1.1", "a link-local address"),
    ("100.64.0.1", "a shared (CGNAT) address"),
    ("fd00::1", "a private address"),
    ("fd00:ec2::254", "an instance-metadata address"),
    ("fe80::1", "a link-local address"),
    ("::ffff:10.0.0.1", "a private address"),
    ("64:ff9b::a9fe:a9fe", "an instance-metadata address carried in an IPv6 address"),
    ("224.0.0.1", "a multicast address"),
    ("240.0.0.1", "a private address"),
])
def test_names_resolving_to_internal_addresses_are_never_dialled(
        make_glint: MakeGlint, ctx: RequestContext, monkeypatch: pytest.MonkeyPatch,
        no_dialling: list[Any], address: str, reason: str) -> None:
    _resolve_as(monkeypatch, {"images.test": [address]})
    glint = make_glint(import_allowed_hosts=())
    task = _run(glint, ctx, "http://images.test/disk.img")
    assert task.status == "failure"
    shown = addresses.parse(address)
    assert f"'images.test' resolves to {shown}, which is {reason}" in task.message
    assert no_dialling == []
    _assert_nothing_left(glint)


@pytest.mark.parametrize("host", ["10.0.0.1", "172.31.255.255", "192.168.0.1",
                                  "169.254.169.254", "[fd00::1]", "[fd00:ec2::254]",
                                  "[::ffff:169.254.169.254]", "100.100.100.200"])
def test_internal_literals_are_refused_at_create(make_glint: MakeGlint, ctx: RequestContext,
                                                 no_dialling: list[Any], host: str) -> None:
    glint = make_glint(import_allowed_hosts=())
    _assert_refused_at_create(glint, ctx, f"http://{host}/x", "imports may not reach it")


def test_every_resolved_address_is_checked(make_glint: MakeGlint, ctx: RequestContext,
                                           monkeypatch: pytest.MonkeyPatch,
                                           no_dialling: list[Any]) -> None:
    # A global first answer does not excuse an internal second one (never dialled either).
    _resolve_as(monkeypatch, {"mixed.test": ["8.8.8.8", "10.0.0.7"]})
    glint = make_glint(import_allowed_hosts=())
    task = _run(glint, ctx, "http://mixed.test/x")
    assert "resolves to 10.0.0.7, which is a private address" in task.message
    assert no_dialling == []


def test_the_deny_list_applies_to_resolved_addresses(make_glint: MakeGlint, ctx: RequestContext,
                                                     monkeypatch: pytest.MonkeyPatch,
                                                     no_dialling: list[Any]) -> None:
    _resolve_as(monkeypatch, {"mirror.test": ["127.0.0.1"]})
    glint = make_glint(import_allowed_hosts=("mirror.test",),
                       import_disallowed_hosts=("127.0.0.0/8",))
    task = _run(glint, ctx, "http://mirror.test/x")
    assert "resolves to 127.0.0.1, which is in the disallowed hosts" in task.message


def test_the_connection_goes_to_the_checked_address_not_a_new_lookup(
        make_glint: MakeGlint, ctx: RequestContext, monkeypatch: pytest.MonkeyPatch,
        http_server: LocalServer) -> None:
    # DNS rebinding: the name answers once with an address that passes, then with one that
    # would not. Loopback only: 127.0.0.1 is made to pass the address rule for this test.
    asked = _resolve_as(monkeypatch, {"rebind.test": ["127.0.0.1"]})
    original = addresses.refusal
    monkeypatch.setattr(addresses, "refusal",
                        lambda a: None if str(a) == "127.0.0.1" else original(a))

    def rebound(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host == "rebind.test" and asked:
            return _real_getaddrinfo("127.0.0.2", port, *args, **kwargs)
        if host == "rebind.test":
            asked.append(host)
            return _real_getaddrinfo("127.0.0.1", port, *args, **kwargs)
        return _real_getaddrinfo(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebound)
    glint = make_glint(import_allowed_hosts=(), import_allowed_ports=())
    url = http_server.serve("/image", DATA).replace("127.0.0.1", "rebind.test")
    task = _run(glint, ctx, url)
    assert (task.status, task.message) == ("success", "")
    assert asked == ["rebind.test"]  # resolved once: the connection used that answer
    assert [r.headers["Host"] for r in http_server.requests] == [
        f"rebind.test:{http_server.port}"]


def test_the_transport_refuses_unchecked_connections(no_dialling: list[Any]) -> None:
    # Without a filter, the transport applies the default rules: loopback is refused.
    import httpx

    with httpx.Client(transport=fetch.transport()) as client, \
            pytest.raises(errors.ScriptError, match="is a loopback address"):
        client.get("http://127.0.0.1/x")
    assert no_dialling == []


def test_host_list_entries_parse(make_glint: Callable[..., Any]) -> None:
    parsed = [str(addresses.HostPattern.parse(t)) for t in (
        "Mirror.Example.org.", "mirror.example.org:8080", "10.0.0.0/8", "[::1]:8443",
        "[fd00::/8]:443", "::1", "::ffff:127.0.0.1")]
    assert parsed == ["mirror.example.org", "mirror.example.org:8080", "10.0.0.0/8",
                      "[::1/128]:8443", "[fd00::/8]:443", "::1/128", "127.0.0.1/32"]
    for bad in ("host:0", "host:http", "[::1]x", ":80"):
        with pytest.raises(ValueError):
            addresses.HostPattern.parse(bad)
