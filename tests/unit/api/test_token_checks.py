"""Token checks' pieces without Keystone: one token per request, slots, refused tokens, cache."""

from __future__ import annotations

import threading
from collections.abc import Awaitable

import anyio
import pytest

from glint import errors
from glint.api import token_checks
from glint.api.keystone import sole_tokens


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize("headers", [
    [(b"x-auth-token", b"a"), (b"x-auth-token", b"b")],
    [(b"x-auth-token", b"a"), (b"x_auth_token", b"a")],  # the same token twice counts too
    [(b"X_Auth_Token", b"a"), (b"x-storage-token", b"b")],
    [(b"x-auth-token", b"a"), (b"x-service-token", b"s"), (b"x_service_token", b"t")],
])
def test_more_than_one_token_is_a_bad_request(headers: list[tuple[bytes, bytes]]) -> None:
    with pytest.raises(errors.BadRequest, match="one X-Auth-Token"):
        sole_tokens(headers)


@pytest.mark.parametrize(("headers", "tokens"), [
    ([(b"x-auth-token", b"a"), (b"x-service-token", b"s")], ("a", "s")),
    ([(b"x_auth_token", b" u ")], ("u", None)),
    ([(b"x-storage-token", b"st")], ("st", None)),
    ([(b"x-auth-tokens", b"not one")], (None, None)),
])
def test_one_token_under_any_spelling_is_the_token(headers: list[tuple[bytes, bytes]],
                                                   tokens: tuple[str | None, str | None]) -> None:
    assert sole_tokens(headers) == tokens


def test_refused_tokens_are_remembered_for_their_time_only() -> None:
    clock = Clock()
    refused = token_checks.RefusedTokens(ttl=30, clock=clock)
    refused.add("bad")
    assert "bad" in refused and " bad " in refused  # auth_token strips tokens
    assert "good" not in refused
    clock.now += 30
    assert "bad" not in refused
    refused.add("other")  # adding forgets what expired
    assert len(refused._until) == 1


def test_refused_tokens_are_bounded_and_kept_as_digests() -> None:
    refused = token_checks.RefusedTokens(ttl=30, size=3)
    for n in range(5):
        refused.add(f"bad-{n}" * 1000)
    assert [f"bad-{n}" * 1000 in refused for n in range(5)] == [False, False, True, True, True]
    assert all(len(key) == 32 for key in refused._until)


def test_refused_tokens_with_no_time_remember_nothing() -> None:
    refused = token_checks.RefusedTokens(ttl=0)
    refused.add("bad")
    assert "bad" not in refused


def test_memory_cache_keeps_entries_for_their_time_and_at_most_size() -> None:
    clock = Clock()
    cache = token_checks.MemoryCache(size=2, clock=clock)
    assert cache  # auth_token takes a falsy cache for none
    cache.set("a", b"1", time=300)
    cache.set("b", b"2")
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == (b"1", b"2", None)
    clock.now += 300
    assert cache.get("a") is None and cache.get("b") == b"2"
    cache.set("c", b"3")
    cache.set("d", b"4")
    assert cache.get("b") is None and cache.get("d") == b"4"


def test_validation_slots_refuse_at_once_when_running_and_waiting_are_full() -> None:
    slots = token_checks.ValidationSlots(running=2, waiting=1)
    release = threading.Event()
    done: list[str] = []

    def slow() -> str:
        release.wait(10)
        return "validated"

    async def main() -> None:
        async with anyio.create_task_group() as tasks:
            for _ in range(3):  # two run, one waits
                tasks.start_soon(lambda: _record(slots.run(slow), done))
            with anyio.fail_after(5):
                while slots.limiter.statistics().tasks_waiting < 1:
                    await anyio.sleep(0.01)
            assert slots.full() and slots.limiter.statistics().borrowed_tokens == 2
            with pytest.raises(errors.ServiceUnavailable, match="try again"):
                await slots.run(slow)
            release.set()
        assert not slots.full()
        assert await slots.run(lambda: "now") == "now"

    anyio.run(main)
    assert done == ["validated"] * 3


async def _record(result: Awaitable[str], into: list[str]) -> None:
    into.append(await result)
