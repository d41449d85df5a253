"""Keystone mode under a flood of bad tokens: does an authenticated request still get through?

``glint serve`` runs in keystone mode against the Keystone the conformance script starts
(``run_tempest.sh URL keystone``: 127.0.0.1:5000, the ``glance`` service user and the ``demo``
user it creates). One client sends ``GET /v2/images?limit=1`` (an endpoint that runs in
Starlette's thread pool) with a valid token, already cached by glint, one request at a time:
first alone (*idle*), then while ``clients`` other connections send, as fast as glint answers
them, a token that is not valid:

- ``repeated``: the same garbage token from every client (what a negative cache answers);
- ``random``: a new garbage token on every request (each one a Keystone call to refuse);
- ``oversized``: a 64 KiB token (refused by the header limits before any token work).

The figure is each flood's p50 and p99 of the authenticated GET against idle. Everything is on
127.0.0.1; ``clients`` is bounded by :data:`MAX_CLIENTS`. One request that waits past
:data:`REQUEST_TIMEOUT` ends that measurement (its time is recorded as the timeout).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import secrets
import time
from collections import Counter
from collections.abc import Callable, Iterator

import httpx

from glint_bench import rawhttp, stats

MAX_CLIENTS = 500
REQUEST_TIMEOUT = 60.0
PATH = "/v2/images?limit=1"
FLOODS: dict[str, Callable[[], str]] = {
    "repeated": lambda: "gAAAAAB-not-a-token-but-shaped-like-one",
    "random": lambda: "gAAAAAB" + secrets.token_urlsafe(120),
    "oversized": lambda: "x" * (64 * 1024),
}


@dataclasses.dataclass(frozen=True)
class Keystone:
    url: str  # e.g. http://127.0.0.1:5000
    service_password: str
    demo_password: str

    def authtoken(self) -> dict[str, str]:
        """glint's ``keystone_authtoken`` table for the ``glance`` service user."""
        return {"www_authenticate_uri": f"{self.url}/v3", "auth_url": f"{self.url}/v3",
                "auth_type": "password", "username": "glance",
                "password": self.service_password, "project_name": "service",
                "user_domain_id": "default", "project_domain_id": "default"}

    def missing(self) -> str | None:
        """Why the run cannot happen (Keystone not answering), or None."""
        try:
            httpx.get(f"{self.url}/v3", timeout=5).raise_for_status()
        except httpx.HTTPError as exc:
            return (f"Keystone at {self.url} does not answer ({exc}); start it with "
                    "run_tempest.sh URL keystone")
        return None

    def demo_token(self) -> str:
        body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
            "name": "demo", "domain": {"id": "default"}, "password": self.demo_password}}},
            "scope": {"project": {"name": "demo", "domain": {"id": "default"}}}}}
        response = httpx.post(f"{self.url}/v3/auth/tokens", json=body, timeout=30)
        response.raise_for_status()
        return response.headers["x-subject-token"]


@dataclasses.dataclass(frozen=True)
class Flooded:
    latency: stats.Latency
    flood_answers: dict[str, int]  # status → count, over the measurement
    timed_out: bool


async def _authenticated(port: int, token: str, seconds: float) -> tuple[list[float], bool]:
    """GETs with ``token``, one at a time, for ``seconds``; their durations."""
    durations: list[float] = []
    connection = await rawhttp.Connection.open(port)
    deadline = time.perf_counter() + seconds
    try:
        while time.perf_counter() < deadline:
            start = time.perf_counter()
            try:
                status, body, took = await asyncio.wait_for(
                    connection.request("GET", PATH, headers={"X-Auth-Token": token}),
                    REQUEST_TIMEOUT)
            except TimeoutError:
                durations.append(time.perf_counter() - start)
                return durations, True
            if status != 200:
                raise RuntimeError(f"GET {PATH} with a valid token: HTTP {status} {body[:300]!r}")
            durations.append(took)
    finally:
        await connection.close()
    return durations, False


async def _flood(port: int, token: Callable[[], str], answers: Counter[str]) -> None:
    """One client sending bad tokens until cancelled; reconnects when glint closes."""
    while True:
        connection = None
        try:
            connection = await rawhttp.Connection.open(port)
            while True:
                status, _, _ = await connection.request("GET", PATH,
                                                        headers={"X-Auth-Token": token()})
                answers[str(status)] += 1
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            answers["closed"] += 1
        finally:
            if connection is not None:
                with contextlib.suppress(Exception):
                    await connection.close()


async def _measure(port: int, token: str, seconds: float, clients: int,
                   bad: Callable[[], str] | None) -> Flooded:
    answers: Counter[str] = Counter()
    flood = [asyncio.create_task(_flood(port, bad, answers)) for _ in range(clients)] \
        if bad is not None else []
    try:
        if flood:
            await asyncio.sleep(0.5)  # let the flood reach glint first
        counted = answers.copy()
        start = time.perf_counter()
        durations, timed_out = await _authenticated(port, token, seconds)
        elapsed = time.perf_counter() - start
        during = {key: answers[key] - counted[key] for key in answers}
    finally:
        for task in flood:
            task.cancel()
        await asyncio.gather(*flood, return_exceptions=True)
    return Flooded(stats.latency(durations, elapsed), dict(sorted(during.items())), timed_out)


def measure(port: int, keystone: Keystone, clients: int, seconds: float) -> dict[str, Flooded]:
    """Idle, then each flood of :data:`FLOODS`, ``clients`` strong (at most MAX_CLIENTS)."""
    if not 1 <= clients <= MAX_CLIENTS:
        raise ValueError(f"clients must be 1-{MAX_CLIENTS}, not {clients}")
    token = keystone.demo_token()
    found = {"idle": asyncio.run(_measure(port, token, 1.0, 0, None))}  # warm-up: caches it
    found["idle"] = asyncio.run(_measure(port, token, seconds, 0, None))
    for name, bad in FLOODS.items():
        found[name] = asyncio.run(_measure(port, token, seconds, clients, bad))
    return found


def settings(keystone: Keystone) -> Iterator[tuple[str, str]]:
    """``glint serve``'s settings for keystone mode (``GLINT_*`` names, lower-cased)."""
    yield "auth_mode", "keystone"
    yield "keystone_authtoken", json.dumps(keystone.authtoken())
