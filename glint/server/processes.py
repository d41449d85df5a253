"""``glint serve``'s processes: one uvicorn server, or several API workers under a supervisor.

With ``api_workers`` above 1 this process supervises uvicorn's API workers: it runs the
start-up recovery once, before any starts, binds nothing itself (each API worker listens on
a socket of its own, SO_REUSEPORT), and starts one again that dies. Each API worker builds its
own glint (:func:`create_api_worker`, uvicorn's app factory).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
from typing import Any, cast

import uvicorn
from starlette.applications import Starlette
from uvicorn import config as uvicorn_config
from uvicorn.supervisors import multiprocess

from glint import app, logcontext
from glint.server import metrics_files
from glint.settings import Settings

LOG = logging.getLogger(__name__)
API_WORKER_APP = "glint.server.processes:create_api_worker"  # the factory each API worker calls
# uvicorn's httptools protocol with header limits and zero-copy downloads: glint/server/protocol.py.
HTTP_PROTOCOL = "glint.server.protocol:GlintProtocol"


class ServeError(Exception):
    """Serving could not start or stopped on a failure; the message says why (the CLI's)."""


def serve(glint: app.Glint, settings: Settings, overrides: dict[str, Any], port: int,
          log_level: str, access_log: bool) -> None:
    """Serve ``glint`` until SIGTERM or SIGINT: in this process, or from ``api_workers`` API
    workers with this one their supervisor. ``port`` is the one :func:`free_port` found free;
    ``overrides`` the command line's settings, which the API workers get as GLINT_* variables."""
    from glint.api.app import create_app

    if settings.api_workers > 1:
        supervise(glint, uvicorn_config_for(API_WORKER_APP, settings, log_level, access_log),
                  overrides, port)
        return
    config = uvicorn_config_for(create_app(glint), settings, log_level, access_log)
    run_until_signalled(uvicorn.Server(config))


def uvicorn_config_for(asgi_app: Any, settings: Settings, log_level: str,
                       access_log: bool) -> uvicorn.Config:
    """How uvicorn serves ``asgi_app``: the app itself, or with several API workers the import
    string of the factory each of their processes calls (spawned, so it configures logging
    again from ``log_config``)."""
    workers = settings.api_workers
    return uvicorn.Config(asgi_app, host=settings.bind_host, port=settings.bind_port,
                          workers=workers, factory=workers > 1, lifespan="on",
                          log_config=logcontext.config(log_level, settings.log_format,
                                                       processes=True)
                          if workers > 1 else None,
                          log_level=log_level, access_log=access_log, server_header=False,
                          http=HTTP_PROTOCOL)


def supervise(glint: app.Glint, config: uvicorn.Config, overrides: dict[str, Any],
              port: int) -> None:
    """Serve from ``config.workers`` API workers, with this process as their supervisor.

    Start-up recovery runs here, once, before any API worker starts, when no write or task of
    this node can be running; an API worker only resubmits pending tasks (``Glint.start``), so
    one that uvicorn starts again after another died leaves its siblings' work alone. Each API
    worker builds its glint from the same settings sources: the command-line overrides reach
    it as GLINT_* variables. SIGTERM or SIGINT stops them all gracefully.
    ``port`` is the one :func:`free_port` found free (``config.port``, or any for 0).
    """
    os.environ.update({f"GLINT_{name.upper()}": str(value) for name, value in overrides.items()})
    os.environ[app.SERVE_ID_ENV] = glint.runner.serve_id
    sockets = listening_sockets(config, port)
    glint.recover()
    try:
        with metrics_files.directory():
            supervisor = multiprocess.Multiprocess(config, sockets=sockets)
            supervisor.run()
    finally:
        glint.close(timeout=0)
    if any(p.exitcode == uvicorn_config.STARTUP_FAILURE for p in supervisor.processes):
        raise ServeError("an API worker could not start; the log above says why")


def create_api_worker() -> Starlette:
    """The app of one API worker of ``glint serve --workers N``: uvicorn's app factory, which
    it imports and calls in each process it starts (:data:`API_WORKER_APP`).

    A glint that cannot be built exits with uvicorn's start-up failure status, which stops
    the supervisor instead of having it start the process again and again.
    """
    from glint.api.app import create_app

    try:
        return create_app(app.build_api_worker())
    except Exception:
        LOG.exception("this API worker could not start")
        sys.exit(uvicorn_config.STARTUP_FAILURE)


def listening_sockets(config: uvicorn.Config, port: int) -> list[socket.socket]:
    """What each API worker listens on: a socket of its own, bound in its process with
    SO_REUSEPORT, so that the kernel spreads new connections over the API workers.

    One socket shared by all of them (uvicorn's way) leaves them to race for each connection,
    and the process that wakes first accepts every one waiting: a burst of keep-alive clients
    (a load balancer's pool, say) lands on a single API worker while the others idle. Where
    SO_REUSEPORT is missing, the shared socket it is. ``port`` was found free by binding it
    without SO_REUSEPORT (:func:`free_port`), so a port in use, or one another glint serve's
    API workers hold, stops this command instead of being shared.
    """
    if not hasattr(socket, "SO_REUSEPORT"):
        return [config.bind_socket()]
    return cast(list[socket.socket], [_OwnSocket(_family(config.host), config.host, port)])


def free_port(host: str, port: int) -> int:
    """``port`` (a free one for 0) if ``host:port`` can be listened on; ServeError if not."""
    with socket.socket(_family(host), socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise ServeError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
        bound: int = probe.getsockname()[1]
        return bound


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


class _OwnSocket:
    """Stands for a listening socket in the list uvicorn hands each API worker: it is pickled
    into the worker's process (spawned) as the recipe, and unpickled there as the socket."""

    def __init__(self, family: int, host: str, port: int) -> None:
        self.family, self.host, self.port = family, host, port

    def __reduce__(self) -> tuple[Any, tuple[int, str, int]]:
        return _bind_reusing_port, (self.family, self.host, self.port)


def _bind_reusing_port(family: int, host: str, port: int) -> socket.socket:
    """In an API worker as it starts: its listening socket (uvicorn calls ``listen``)."""
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except OSError as exc:  # logging is not set up yet: stderr; the supervisor then stops
        sock.close()
        print(f"an API worker cannot listen on {host}:{port}: {exc}", file=sys.stderr)
        sys.exit(uvicorn_config.STARTUP_FAILURE)
    return sock


def run_until_signalled(server: uvicorn.Server) -> None:
    """Run ``server``; SIGTERM or SIGINT stops it gracefully (ServeError if it did not start).

    uvicorn handles both signals while it runs (stop accepting, finish requests, run the
    lifespan shutdown that closes glint), then raises the signal again for the handler it
    found in place: this one, which records it instead of killing the process mid-exit.
    """
    received: list[int] = []
    previous = {sig: signal.signal(sig, lambda sig, _frame: received.append(sig))
                for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        server.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if received:
        LOG.info("stopped on %s", signal.Signals(received[0]).name)
    elif not server.started:
        raise ServeError("glint serve did not start; the log above says why")
