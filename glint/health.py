"""Health checks: what a load balancer and an operator ask of a glint process.

:class:`Health` runs the checks that mean the process can do its work, each bounded in time:

``database``
    reachable, and migrated to the revision this glint ships (a node left on an old schema is
    not healthy even though it answers).
``store``
    a write to each store can begin and be aborted (nothing is left: the writer never commits);
    an object store, which sends nothing before a segment is full, is asked over the network
    (its ``probe``: the container or bucket answers to the credentials).
``broker``
    reachable, when an executor publishes to one (``celery``).
``reaper``
    its thread has passed within three intervals (when the process runs one).

A file named by ``healthcheck_disable_file`` takes the process out of rotation whatever the
checks say, as oslo.middleware's ``disable_by_file`` does for Glance: the answer is then
``DISABLED BY FILE``. Results are kept for :data:`CACHE_SECONDS` so a busy load balancer does not
turn into load. ``glint serve`` answers ``GET /healthcheck`` (glint.api.health); ``glint worker
--health-port P`` answers the same on a port of its own (:func:`serve`).
"""

from __future__ import annotations

import dataclasses
import http.server
import json
import pathlib
import threading
import time
from collections.abc import Callable, Mapping

import sqlalchemy as sa

from glint.db import engine
from glint.stores.base import Store

CACHE_SECONDS = 2.0
METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"  # glint.metrics.CONTENT_TYPE
DISABLED = "DISABLED BY FILE"


@dataclasses.dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    milliseconds: float


@dataclasses.dataclass(frozen=True)
class Report:
    checks: tuple[Check, ...]
    disabled: bool = False

    @property
    def ok(self) -> bool:
        return not self.disabled and all(check.ok for check in self.checks)

    def text(self) -> str:
        """oslo.middleware's plain answer: ``OK``, or what failed (one line each)."""
        if self.disabled:
            return DISABLED
        if self.ok:
            return "OK"
        return "\n".join(f"{c.name}: {c.detail}" for c in self.checks if not c.ok)

    def as_json(self) -> dict[str, object]:
        return {"status": "disabled" if self.disabled else "ok" if self.ok else "failing",
                "checks": {c.name: {"ok": c.ok, "detail": c.detail,
                                    "milliseconds": round(c.milliseconds, 1)}
                           for c in self.checks}}


class Health:
    """The checks of one process (see the module docstring)."""

    def __init__(self, checks: Mapping[str, Callable[[], str]],
                 disable_file: pathlib.Path | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._checks = dict(checks)
        self._disable_file = disable_file
        self._clock = clock
        self._lock = threading.Lock()
        self._cached: tuple[float, Report] | None = None

    def report(self) -> Report:
        if self._disable_file is not None and self._disable_file.exists():
            return Report(checks=(), disabled=True)
        with self._lock:
            now = self._clock()
            if self._cached is not None and now - self._cached[0] < CACHE_SECONDS:
                return self._cached[1]
            report = Report(checks=tuple(_run(name, check) for name, check in
                                         self._checks.items()))
            self._cached = (now, report)
            return report


def _run(name: str, check: Callable[[], str]) -> Check:
    started = time.monotonic()
    try:
        detail, ok = check(), True
    except Exception as exc:  # a failed check is a result, not an error of the endpoint
        detail, ok = _reason(exc), False
    return Check(name, ok, detail, (time.monotonic() - started) * 1000)


def _reason(exc: Exception) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".strip().rstrip(":")


# -- the checks -------------------------------------------------------------------------------


def database_check(db: engine.Database, head: Callable[[], str | None]) -> Callable[[], str]:
    def check() -> str:
        from alembic.runtime.migration import MigrationContext

        with db.engine.connect() as connection:
            connection = connection.execution_options(glint_readonly=True)
            connection.execute(sa.text("SELECT 1"))
            revision = MigrationContext.configure(connection).get_current_revision()
        wanted = head()
        if revision != wanted:
            raise RuntimeError(f"database at revision {revision}, this glint needs {wanted}: "
                               "run `glint db upgrade`")
        return f"revision {revision}"
    return check


def store_check(stores: Mapping[str, Store]) -> Callable[[], str]:
    def check() -> str:
        for name, store in stores.items():
            writer = store.writer(f"healthcheck-{threading.get_ident()}")
            probe = getattr(store, "probe", None)
            try:
                writer.write(b"\0")
                if probe is not None:
                    probe()
            except Exception as exc:
                raise RuntimeError(f"store {name}: {_reason(exc)}") from None
            finally:
                writer.abort()
        return f"{len(stores)} writable"
    return check


def broker_check(url: str, timeout: float = 2.0) -> Callable[[], str]:
    def check() -> str:
        from kombu import connection as kombu_connection

        with kombu_connection.Connection(url, connect_timeout=timeout) as connection:  # type: ignore[no-untyped-call]
            connection.ensure_connection(max_retries=1, timeout=timeout)
            return f"{connection.transport_cls} reachable"
    return check


def reaper_check(last_pass: Callable[[], float | None], running: Callable[[], bool],
                 interval: float, clock: Callable[[], float] = time.monotonic,
                 ) -> Callable[[], str]:
    def check() -> str:
        if not running():
            return "not run by this process"
        last = last_pass()
        if last is None:
            raise RuntimeError("the reaper has not run yet")
        age = clock() - last
        if age > 3 * interval + 5:
            raise RuntimeError(f"the reaper last ran {age:.0f} s ago (interval {interval:g} s)")
        return f"last pass {age:.0f} s ago"
    return check


# -- a port of its own (glint worker) ---------------------------------------------------------


def serve(health: Health, host: str, port: int, metrics: Callable[[], bytes] | None = None,
          ) -> http.server.ThreadingHTTPServer:
    """Answer ``GET /healthcheck`` (plain, or JSON with ``Accept: application/json``) on a
    thread, and with ``metrics`` (the body's maker, glint.metrics) ``GET /metrics``; returns
    the server (``shutdown()`` stops it)."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?")[0]
            if path == "/metrics" and metrics is not None:
                self._answer(200, metrics(), METRICS_CONTENT_TYPE)
                return
            if path != "/healthcheck":
                self.send_error(404)
                return
            report = health.report()
            wants_json = "application/json" in self.headers.get("Accept", "")
            body = (json.dumps(report.as_json()) if wants_json else report.text()).encode()
            self._answer(200 if report.ok else 503, body,
                         "application/json" if wants_json else "text/plain; charset=utf-8")

        def _answer(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass  # a probe every few seconds would drown the worker's log

    server = http.server.ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, name="glint-health", daemon=True).start()
    return server
