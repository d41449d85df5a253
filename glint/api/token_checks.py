"""What keeps token checks from starving the server: slots for validations, refused tokens.

A token glint has not seen costs a Keystone round trip to validate. Those round trips run in
:class:`ValidationSlots`, a few threads of their own, never in the pool requests are served
from, and a request that finds every slot taken and the queue for them full gets 503 at once.
:class:`RefusedTokens` remembers the tokens Keystone refused, for a short time, so that the same
bad token sent again is refused without another round trip. :class:`MemoryCache` is the
in-process cache of validated tokens ``auth_token`` uses when no memcached is configured.
"""

from __future__ import annotations

import collections
import hashlib
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import anyio
import anyio.to_thread

from glint import errors

T = TypeVar("T")
BUSY = ("Too many tokens are being validated with Keystone at once; try again shortly.")


class ValidationSlots:
    """At most ``running`` validations at once, and at most ``waiting`` more queued for one.

    Used from the event loop only: admitting a request is a count, no lock needed.
    """

    def __init__(self, running: int, waiting: int) -> None:
        self.running = running
        self.waiting = waiting
        self.admitted = 0  # running and waiting
        self._limiter: anyio.CapacityLimiter | None = None

    @property
    def limiter(self) -> anyio.CapacityLimiter:
        # Made on first use, in the event loop that serves requests.
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(self.running)
        return self._limiter

    def full(self) -> bool:
        return self.admitted >= self.running + self.waiting

    async def run(self, check: Callable[[], T]) -> T:
        """``check()`` in a thread of the slots; ServiceUnavailable when none is to be had."""
        if self.full():
            raise errors.ServiceUnavailable(BUSY)
        self.admitted += 1
        try:
            return await anyio.to_thread.run_sync(check, limiter=self.limiter)
        finally:
            self.admitted -= 1


class RefusedTokens:
    """Tokens refused in the last ``ttl`` seconds (at most ``size``, the oldest forgotten first).

    Kept as SHA-256 digests: a refused token may be up to a header line long, and is no
    business of anyone reading the process's memory. Thread-safe: validations add from their
    threads while the event loop looks up.
    """

    def __init__(self, ttl: float, size: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.size = size
        self._clock = clock
        self._lock = threading.Lock()
        self._until: collections.OrderedDict[bytes, float] = collections.OrderedDict()

    def add(self, token: str) -> None:
        if self.ttl <= 0:
            return
        now = self._clock()
        with self._lock:
            self._forget_expired(now)
            key = _digest(token)
            self._until.pop(key, None)
            self._until[key] = now + self.ttl
            while len(self._until) > self.size:
                self._until.popitem(last=False)

    def __contains__(self, token: object) -> bool:
        if not isinstance(token, str) or not self._until:
            return False
        until = self._until.get(_digest(token))
        return until is not None and until > self._clock()

    def _forget_expired(self, now: float) -> None:
        # Entries share one ttl, so insertion order is expiry order.
        while self._until and next(iter(self._until.values())) <= now:
            self._until.popitem(last=False)


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.strip().encode("utf-8", "surrogateescape")).digest()


class MemoryCache:
    """The in-process token cache: what ``auth_token`` needs of a memcached client.

    ``auth_token``'s own in-process cache is deprecated, scans every entry on each read, and
    gives each thread that finds it busy a new, empty one. This one is shared by every thread
    and bounded: past ``size`` entries the oldest is forgotten.
    """

    def __init__(self, size: int = 10_000, clock: Callable[[], float] = time.monotonic) -> None:
        self.size = size
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: collections.OrderedDict[str, tuple[float, Any]] = (
            collections.OrderedDict())

    def get(self, key: str) -> Any:
        entry = self._entries.get(key)
        if entry is None or entry[0] <= self._clock():
            return None
        return entry[1]

    def set(self, key: str, value: Any, time: float = 0, **_: Any) -> bool:
        """Keep ``value`` for ``time`` seconds (0: until it is the oldest of too many)."""
        until = self._clock() + time if time else float("inf")
        with self._lock:
            self._entries.pop(key, None)
            self._entries[key] = (until, value)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)
        return True
