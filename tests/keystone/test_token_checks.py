"""Token checks against a real Keystone: one token per request, header limits before any token
work, refused tokens remembered, and bad tokens that cannot starve requests with good ones."""

from __future__ import annotations

import collections
import contextlib
import http.client
import secrets
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.datastructures import Headers
from starlette.types import Receive, Scope, Send

from glint import app
from glint import settings as settings_mod
from glint.api import identity, token_checks
from glint.api.app import create_app
from glint.api.keystone import CACHE_KEY, KeystoneMiddleware, build_auth_protocol
from glint.db import models
from glint.notifiers.memory import MemoryNotifier
from glint.scripts.registry import Registry
from glint.server.protocol import GlintProtocol
from glint.stores.memory import MemoryStore
from tests import rawhttp
from tests.keystone.conftest import authtoken_options
from tests.serving import serving
from tests.unit.api.support import Echo, TestClient

KiB = 1024
VALIDATIONS, BACKLOG = 2, 2


@pytest.fixture(scope="module")
def port(keystone: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """glint in keystone mode behind the protocol ``glint serve`` runs, with few slots."""
    tmp = tmp_path_factory.mktemp("keystone-served")
    settings = settings_mod.Settings(
        data_dir=tmp / "data", database_url=f"sqlite:///{tmp}/g.db", auth_mode="keystone",
        keystone_authtoken=authtoken_options(), token_validations=VALIDATIONS,
        token_validation_backlog=BACKLOG)
    built = app.build(settings, store=MemoryStore(), notifier=MemoryNotifier(),
                      registry=Registry.of({"echo": Echo}), executor="inline")
    models.Base.metadata.create_all(built.db.engine)
    try:
        with serving(create_app(built, manage_lifecycle=False), GlintProtocol) as bound:
            yield bound
    finally:
        built.close(timeout=10)


def get(port: int, token: str, timeout: float = 30) -> tuple[int, float]:
    """``GET /v2/images`` with ``token``: its status and how long it took."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        start = time.perf_counter()
        conn.request("GET", "/v2/images?limit=1", headers={"X-Auth-Token": token})
        response = conn.getresponse()
        response.read()
        return response.status, time.perf_counter() - start
    finally:
        conn.close()


# -- one token per request ------------------------------------------------------------------


@pytest.mark.parametrize("second", ["X-Auth-Token", "X_Auth_Token", "X-Storage-Token"])
def test_a_request_with_two_tokens_is_400(keystone_client: TestClient, tokens: dict[str, str],
                                          second: str) -> None:
    for other in (tokens["other"], tokens["member"]):  # another project's, or the same again
        response = keystone_client.get("/v2/images", headers=[
            ("X-Auth-Token", tokens["member"]), (second, other)])
        assert response.status_code == 400, response.text
        assert "one X-Auth-Token" in response.json()["error"]["message"]
    assert keystone_client.get("/v2/images", headers=[
        ("X-Auth-Token", tokens["member"]), ("X-Service-Token", tokens["service"])]
    ).status_code == 200


@pytest.mark.parametrize("name", ["X-Auth-Token", "X_Auth_Token", "X-Storage-Token"])
def test_the_token_passed_on_is_the_one_validated(tokens: dict[str, str], name: str) -> None:
    seen: list[Headers] = []

    async def downstream(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(Headers(scope=scope))
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    client = TestClient(KeystoneMiddleware(downstream, authtoken_options()))  # no lifespan
    assert client.get("/v2/images", headers={name: tokens["member"]}).status_code == 204
    names = [key for key in seen[0] if key.replace("_", "-") in ("x-auth-token",
                                                                  "x-storage-token")]
    assert names == ["x-auth-token"]
    settings = settings_mod.Settings(auth_mode="keystone")
    ctx = identity.from_headers(seen[0], settings, "req-1")
    assert ctx.auth_token == tokens["member"]  # what glance-download is handed


# -- header limits come first ---------------------------------------------------------------


@pytest.mark.parametrize(("size", "message"), [(17 * KiB, "Header Line Too Long"),
                                               (64 * KiB, "Header Line Too Long"),
                                               (1024 * KiB, "Headers Too Large")])
def test_oversized_tokens_are_400_before_any_token_work(port: int, size: int,
                                                        message: str) -> None:
    start = time.perf_counter()
    answer = rawhttp.exchange(port, rawhttp.head("/v2/images",
                                                 [("X-Auth-Token", "t" * size)]))
    # Sent on to Keystone, such a token took 3.5 s of retries and then was a 503.
    assert time.perf_counter() - start < 2
    assert answer.status == 400 and message.encode() in answer.body


# -- refused tokens and validation slots ----------------------------------------------------


def test_a_refused_token_is_refused_again_without_keystone(
        keystone: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from keystonemiddleware import auth_token

    refused = token_checks.RefusedTokens(ttl=30)
    protocol = build_auth_protocol(authtoken_options(), refused)
    protocol._token_cache.initialize({CACHE_KEY: token_checks.MemoryCache()})
    bad = "gAAAAAB" + secrets.token_urlsafe(100)
    with pytest.raises(auth_token.InvalidToken):
        protocol.fetch_token(bad)  # Keystone says no
    assert bad in refused

    def not_again(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("asked Keystone about a token it refused lately")

    monkeypatch.setattr(protocol._identity_server, "verify_token", not_again)
    with pytest.raises(auth_token.InvalidToken):
        protocol.fetch_token(bad)


@contextlib.contextmanager
def flood(port: int, clients: int, token: Any) -> Iterator[collections.Counter[int]]:
    """``clients`` threads sending ``token()`` as fast as glint answers, until the block ends."""
    answers: collections.Counter[int] = collections.Counter()
    stop = threading.Event()

    def client() -> None:
        while not stop.is_set():
            with contextlib.suppress(OSError, http.client.HTTPException):
                answers[get(port, token())[0]] += 1

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(0.5)
        yield answers
    finally:
        stop.set()
        for thread in threads:
            thread.join(60)


@pytest.mark.parametrize("bad", ["random", "repeated"])
def test_bad_tokens_do_not_starve_requests_with_a_cached_one(
        port: int, tokens: dict[str, str], bad: str) -> None:
    assert get(port, tokens["member"])[0] == 200  # validated once: cached from now on
    repeated = "gAAAAAB-the-same-bad-token-" + bad

    def token() -> str:
        return repeated if bad == "repeated" else "gAAAAAB" + secrets.token_urlsafe(100)

    took = []
    with flood(port, 40, token) as answers:
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            status, seconds = get(port, tokens["member"])
            assert status == 200
            took.append(seconds)
    # Before slots of their own, 40 such clients held every thread: a GET waited 60 s and more.
    assert max(took) < 2, sorted(took)[-5:]
    assert answers[401] > 0
    if bad == "random":  # more new tokens than slots and backlog: the rest 503 at once
        assert answers[503] > 0
    else:  # refused once, remembered: never more than the slots' worth waits for Keystone
        assert answers[503] == 0
