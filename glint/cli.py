"""The ``glint`` command: serve the API, migrate and purge the database, list task scripts.

Each command builds the settings once (``glint.settings.load``) and, where it needs more than
the database, glint itself through the composition root (``glint.app.build``). A setting that
cannot work ends the command with one line on stderr and exit status 2, never a traceback.

Each command imports what it uses when it runs (uvicorn, SQLAlchemy, Alembic, oslo.policy,
the composition root): ``glint --help`` or ``glint db current`` would otherwise wait a second
or two for libraries they never touch.
"""

from __future__ import annotations

import contextlib
import logging
import logging.config
import os
import pathlib
import re
import signal
import socket
import sys
import tomllib
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, cast

import click

from glint import errors, logcontext
from glint.tasks import states

if TYPE_CHECKING:
    import datetime

    import pydantic
    import pydantic_settings
    import sqlalchemy as sa
    import uvicorn

    from glint import app
    from glint import settings as settings_mod
    from glint.db import engine

LOG = logging.getLogger(__name__)
API_WORKER_APP = "glint.api.app:create_api_worker"  # the factory each API worker calls
# uvicorn's httptools protocol with header limits and zero-copy downloads: glint/api/server.py.
HTTP_PROTOCOL = "glint.api.server:GlintProtocol"
# prometheus-client's multiprocess directory (glint.metrics.MULTIPROC_ENV). Not imported from
# there: prometheus-client picks its mode when first imported, which must come after this is set.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
LOG_LEVELS = ("critical", "error", "warning", "info", "debug")
CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class SettingsError(click.ClickException):
    """A setting is missing, malformed or names something that is not installed."""

    exit_code = 2


@click.group(context_settings=CONTEXT)
@click.version_option(package_name="glint", prog_name="glint")
def main() -> None:
    """glint: an image service with an asynchronous task system, speaking Glance v2.

    Settings come from GLINT_* environment variables and the TOML file named by
    $GLINT_CONFIG; the README lists them.
    """


# -- serve --------------------------------------------------------------------------------


@main.command()
@click.option("--host", help="Address to listen on [default: the bind_host setting].")
@click.option("--port", type=int, help="Port to listen on [default: the bind_port setting].")
@click.option("--workers", type=click.IntRange(1, 64),
              help="Processes to serve the API from [default: the api_workers setting].")
@click.option("--migrate/--no-migrate", default=False, show_default=True,
              help="Apply database migrations before serving.")
@click.option("--log-level", type=click.Choice(LOG_LEVELS), default="info", show_default=True)
@click.option("--access-log/--no-access-log", default=True, show_default=True,
              help="Log one line per HTTP request.")
def serve(host: str | None, port: int | None, workers: int | None, migrate: bool,
          log_level: str, access_log: bool) -> None:
    """Serve the Glance v2 API until SIGTERM or SIGINT.

    On shutdown glint stops taking tasks and waits (up to 30 s) for running ones. A database
    that cannot be reached does not stop it: requests that need it answer 503 until it is back.
    With --workers N, N processes (API workers) serve the API and run the in-process tasks;
    this one supervises them, and starts one again that dies.
    """
    import uvicorn

    overrides = {k: v for k, v in {"bind_host": host, "bind_port": port,
                                   "api_workers": workers}.items() if v is not None}
    settings = _settings(**overrides)
    _configure_logging(log_level, settings.log_format)
    url = settings.effective_database_url
    if migrate:
        _upgrade(url, "head")
    _require_migrated(url, unreachable_ok=True)
    # Before start-up recovery: on a port in use, another glint serve of this node may be
    # running, and recovery would fail its tasks and delete its uploads.
    bind_port = _free_port(settings.bind_host, settings.bind_port)
    from glint.api.app import create_app

    glint = _build(settings)
    _check_stores(glint, unreachable_ok=True)
    if settings.api_workers > 1:
        config = _uvicorn_config(API_WORKER_APP, settings, log_level, access_log)
        _supervise(glint, config, overrides, bind_port)
        return
    config = _uvicorn_config(create_app(glint), settings, log_level, access_log)
    _run_until_signalled(uvicorn.Server(config))


def _uvicorn_config(asgi_app: Any, settings: settings_mod.Settings, log_level: str,
                    access_log: bool) -> uvicorn.Config:
    """How uvicorn serves ``asgi_app``: the app itself, or with several API workers the import
    string of the factory each of their processes calls (spawned, so it configures logging
    again from ``log_config``)."""
    import uvicorn

    workers = settings.api_workers
    return uvicorn.Config(asgi_app, host=settings.bind_host, port=settings.bind_port,
                          workers=workers, factory=workers > 1, lifespan="on",
                          log_config=_log_config(log_level, settings.log_format)
                          if workers > 1 else None,
                          log_level=log_level, access_log=access_log, server_header=False,
                          http=HTTP_PROTOCOL)


def _supervise(glint: app.Glint, config: uvicorn.Config, overrides: dict[str, Any],
               port: int) -> None:
    """Serve from ``config.workers`` API workers, with this process as their supervisor.

    Start-up recovery runs here, once, before any API worker starts, when no write or task of
    this node can be running; an API worker only resubmits pending tasks (``Glint.start``), so
    one that uvicorn starts again after another died leaves its siblings' work alone. Each API
    worker builds its glint from the same settings sources: the command-line overrides reach
    it as GLINT_* variables. SIGTERM or SIGINT stops them all gracefully; the command exits 0.
    ``port`` is the one :func:`_free_port` found free (``config.port``, or any for 0).
    """
    from uvicorn import config as uvicorn_config
    from uvicorn.supervisors import multiprocess

    from glint import app

    os.environ.update({f"GLINT_{name.upper()}": str(value) for name, value in overrides.items()})
    os.environ[app.SERVE_ID_ENV] = glint.runner.serve_id
    sockets = _listening_sockets(config, port)
    glint.recover()
    try:
        with _metrics_directory():
            supervisor = multiprocess.Multiprocess(config, sockets=sockets)
            supervisor.run()
    finally:
        glint.close(timeout=0)
    if any(p.exitcode == uvicorn_config.STARTUP_FAILURE for p in supervisor.processes):
        raise click.ClickException("an API worker could not start; the log above says why")


@contextlib.contextmanager
def _metrics_directory() -> Iterator[None]:
    """prometheus-client's multiprocess mode for the API workers (spawned after this is set):
    each writes its metrics to files in a directory of this supervisor's, which any of them
    reads to answer ``/metrics`` for all. The directory goes when the supervisor stops, so a
    new ``glint serve`` starts its counters from zero, as one process does."""
    import shutil
    import tempfile

    directory = tempfile.mkdtemp(prefix="glint-metrics-")
    previous = os.environ.get(MULTIPROC_ENV)
    os.environ[MULTIPROC_ENV] = directory
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(MULTIPROC_ENV, None)
        else:
            os.environ[MULTIPROC_ENV] = previous
        shutil.rmtree(directory, ignore_errors=True)


def _listening_sockets(config: uvicorn.Config, port: int) -> list[socket.socket]:
    """What each API worker listens on: a socket of its own, bound in its process with
    SO_REUSEPORT, so that the kernel spreads new connections over the API workers.

    One socket shared by all of them (uvicorn's way) leaves them to race for each connection,
    and the process that wakes first accepts every one waiting: a burst of keep-alive clients
    (a load balancer's pool, say) lands on a single API worker while the others idle. Where
    SO_REUSEPORT is missing, the shared socket it is. ``port`` was found free by binding it
    without SO_REUSEPORT (:func:`_free_port`), so a port in use, or one another glint serve's
    API workers hold, stops this command instead of being shared.
    """
    if not hasattr(socket, "SO_REUSEPORT"):
        return [config.bind_socket()]
    return cast(list[socket.socket], [_OwnSocket(_family(config.host), config.host, port)])


def _free_port(host: str, port: int) -> int:
    """``port`` (a free one for 0) if ``host:port`` can be listened on; ClickException if not."""
    with socket.socket(_family(host), socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise click.ClickException(f"cannot listen on {host}:{port}: "
                                       f"{exc.strerror or exc}") from exc
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
    from uvicorn import config as uvicorn_config

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


def _run_until_signalled(server: uvicorn.Server) -> None:
    """Run ``server``; SIGTERM or SIGINT stops it gracefully and the command exits 0.

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
        raise click.ClickException("glint serve did not start; the log above says why")


def _require_migrated(url: str, unreachable_ok: bool = False) -> None:
    """Stop unless the database is at this glint's revision; with ``unreachable_ok``, a
    database that cannot be reached now is let pass (its revision is not checked)."""
    import sqlalchemy as sa

    from glint.db import migrate as migrations

    try:
        with _database_errors(url, unreachable_ok):
            current, head = migrations.current(url), migrations.head()
    except sa.exc.OperationalError as exc:
        LOG.warning("cannot use the database %s (%s); serving anyway: requests that need it "
                    "answer 503 until it is back (its revision was not checked)", _safe(url),
                    _reason(exc))
        return
    if current != head:
        raise SettingsError(f"the database {_safe(url)} is at revision {current or 'none'}, this "
                            f"glint needs {head}: run `glint db upgrade` (or serve --migrate)")


# -- worker -------------------------------------------------------------------------------


@main.command()
@click.option("-Q", "--queues", help="Comma-separated queues to consume [default: the "
              "task_default_queue setting and every queue in task_queues].")
@click.option("-c", "--concurrency", type=click.IntRange(1, 256),
              help="Tasks run at once [default: the executor_threads setting].")
@click.option("--pool", type=click.Choice(["threads", "prefork", "solo"]), default="threads",
              show_default=True, help="Celery execution pool.")
@click.option("--log-level", type=click.Choice(LOG_LEVELS), default="info", show_default=True)
@click.option("--health-port", type=click.IntRange(0, 65535),
              help="Answer GET /healthcheck and GET /metrics on this port (on bind_host), as "
              "glint serve does.")
def worker(queues: str | None, concurrency: int | None, pool: str, log_level: str,
           health_port: int | None) -> None:
    """Run tasks published by the celery executor, until SIGTERM or SIGINT.

    The worker runs each task with the same runner and scripts as `glint serve`, and runs the
    reaper too. It needs the same database_url, broker_url and store settings as the API nodes.
    SIGTERM lets running tasks finish (Celery's warm shutdown). A database that cannot be
    reached does not stop it: it waits for it before taking tasks.
    """
    # prefork: the tasks run in child processes, whose metrics reach the health port through
    # prometheus-client's multiprocess files (set before anything imports it).
    with _metrics_directory() if pool == "prefork" else contextlib.nullcontext():
        _work(queues, concurrency, pool, log_level, health_port)


def _work(queues: str | None, concurrency: int | None, pool: str, log_level: str,
          health_port: int | None) -> None:
    settings = _settings(executor="celery")
    _configure_logging(log_level, settings.log_format)
    _wait_for_database(settings.effective_database_url)
    from glint.executors import celery as celery_executor

    glint = _build(settings)
    _check_stores(glint)
    executor = glint.executor
    if not isinstance(executor, celery_executor.CeleryExecutor):
        raise SettingsError("glint worker needs the celery executor")
    chosen = queues or ",".join(celery_executor.queue_names(settings))
    celery_executor.say_outcomes()  # Celery's line for a run: "ran in", and its outcome
    if pool == "prefork":  # children must not share the parent's database connections
        from celery import signals

        signals.worker_process_init.connect(
            lambda **_: glint.db.engine.dispose(close=False), weak=False)
    from celery import signals as celery_signals

    # SIGTERM or SIGINT: take no new task from here on (the consumer stops only at its next
    # poll, seconds later; what it still receives goes back to the queue).
    celery_signals.worker_shutting_down.connect(lambda **_: executor.drain(), weak=False)
    glint.start(recover=False)
    if health_port is not None and glint.health is not None:
        from glint import health

        health.serve(glint.health, settings.bind_host, health_port,
                     glint.metrics.render if glint.metrics is not None else None)
    threads = concurrency or settings.executor_threads
    LOG.info("glint worker: queues %s, concurrency %d (%s pool), broker %s", chosen, threads,
             pool, _safe(settings.broker_url))
    try:
        # --quiet: no Celery banner, which suggests options (-E) this command does not take;
        # the line above says what it would.
        executor.app.worker_main([
            "--quiet", "worker", f"--queues={chosen}", f"--pool={pool}",
            f"--concurrency={threads}",
            f"--loglevel={log_level.upper()}", f"--hostname=glint-{os.getpid()}@%h",
            "--without-gossip", "--without-mingle", "--without-heartbeat"])
    finally:
        glint.close(timeout=10)


def _wait_for_database(url: str, retry: float | None = None) -> None:
    """Return once the database answers (trying again every ``retry`` seconds, with a warning
    now and then) and is at this glint's revision: a worker takes no task it could not run."""
    import time

    import sqlalchemy as sa

    from glint import app
    from glint.db import migrate as migrations

    retry = app.RECOVERY_RETRY if retry is None else retry

    started = time.monotonic()
    warned_at: float | None = None
    while True:
        try:
            with _database_errors(url, unreachable_ok=True):
                migrations.current(url)
        except sa.exc.OperationalError as exc:
            now = time.monotonic()
            if warned_at is None or now - warned_at >= 60:
                LOG.warning("cannot use the database %s (%s); waiting for it before taking "
                            "tasks (trying again every %g s)", _safe(url), _reason(exc), retry)
                warned_at = now
            time.sleep(retry)
            continue
        break
    if warned_at is not None:
        LOG.info("the database is back after %.0f s", time.monotonic() - started)
    _require_migrated(url)


# -- db -----------------------------------------------------------------------------------


@main.group()
def db() -> None:
    """Migrate or purge the database (the database_url setting)."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True, help="Revision to upgrade to.")
def db_upgrade(revision: str) -> None:
    """Apply the database migrations (a no-op when the database is up to date)."""
    settings = _settings()
    _configure_logging("warning")
    url = settings.effective_database_url
    before = _current(url)
    _upgrade(url, revision)
    after = _current(url)
    if before == after:
        click.echo(f"{_safe(url)}: already at revision {after}")
    else:
        click.echo(f"{_safe(url)}: upgraded from {before or 'an empty database'} to {after}")


@db.command("current")
def db_current() -> None:
    """Show the database's migration revision and the newest this glint has."""
    from glint.db import migrate as migrations

    settings = _settings()
    _configure_logging("warning")
    url = settings.effective_database_url
    current, head = _current(url), migrations.head()
    state = "up to date" if current == head else "needs `glint db upgrade`"
    click.echo(f"{_safe(url)}: revision {current or 'none'} (head {head}, {state})")


@db.command("purge")
def db_purge() -> None:
    """Hard-delete expired (and soft-deleted) tasks; print how many went."""
    from glint.scripts.registry import Registry

    settings = _settings()
    _configure_logging("warning")
    _require_migrated(settings.effective_database_url)
    glint = _build(settings, registry=Registry({}, {}), executor="inline")
    try:
        count = glint.tasks.purge()
    finally:
        glint.close(timeout=0)
    click.echo(f"purged {count} expired task{'' if count == 1 else 's'}")


@db.command("load-metadefs")
@click.argument("path", type=click.Path(exists=True, path_type=pathlib.Path))
@click.option("--overwrite", is_flag=True,
              help="Replace namespaces that exist already (default: leave them, and say so).")
def db_load_metadefs(path: pathlib.Path, overwrite: bool) -> None:
    """Load metadata definitions from PATH: a directory of Glance's JSON files (its
    etc/metadefs, as `glance-manage db_load_metadefs` reads them), or one such file.

    Every file is checked first; one that cannot be loaded stops the command and nothing is
    loaded.
    """
    from glint.metadefs import files

    url = _migrated_database()
    with _database_errors(url), _refusals(), _database(url) as database:
        done = files.load(database, path, overwrite=overwrite)
    for name in done.skipped:
        click.echo(f"skipped {name}: it exists already (--overwrite replaces it)")
    click.echo(f"loaded {_count(len(done.loaded), 'namespace')} from {path}")


@db.command("export-metadefs")
@click.argument("directory", type=click.Path(file_okay=False, path_type=pathlib.Path))
def db_export_metadefs(directory: pathlib.Path) -> None:
    """Write every metadata definition namespace to DIRECTORY, one JSON file each, in the
    format `glint db load-metadefs` (and Glance) reads. Files of the same name are replaced."""
    from glint.metadefs import files

    url = _migrated_database()
    with _database_errors(url), _refusals(), _database(url) as database:
        written = files.export(database, directory)
    click.echo(f"exported {_count(len(written), 'namespace')} to {directory}")


def _migrated_database() -> str:
    settings = _settings()
    _configure_logging("warning")
    url = settings.effective_database_url
    _require_migrated(url)
    return url


@contextlib.contextmanager
def _database(url: str) -> Iterator[engine.Database]:
    from glint.db import engine

    database = engine.Database(url)
    try:
        yield database
    finally:
        database.dispose()


@contextlib.contextmanager
def _refusals() -> Iterator[None]:
    """A request glint refuses (a bad file, say) as one line and exit status 1."""
    try:
        yield
    except errors.GlintError as exc:
        raise click.ClickException(exc.message) from None


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


# -- task ---------------------------------------------------------------------------------


@main.group()
def task() -> None:
    """List, show, cancel and retry tasks: as admin, on the database itself.

    These need the database_url (and for retry the executor) settings of the glint they
    act on, not a running server.
    """


@task.command("list")
@click.option("--status", type=click.Choice(states.STATUSES), help="Only tasks in this status.")
@click.option("--type", "task_type", metavar="TYPE", help="Only tasks of this type.")
@click.option("--project", metavar="PROJECT", help="Only tasks of this project (owner).")
@click.option("--older-than", metavar="AGE", help="Only tasks created longer ago than AGE: "
              "a number with s, m, h or d (90s, 15m, 2h, 1d; or 1h30m).")
@click.option("--limit", type=click.IntRange(1, 100000), default=50, show_default=True,
              help="At most this many tasks, newest first.")
def task_list(status: str | None, task_type: str | None, project: str | None,
              older_than: str | None, limit: int) -> None:
    """List tasks, newest first, expired ones included: an aligned table."""
    from glint.db import models
    from glint.timefmt import isotime

    age = _age(older_than) if older_than is not None else None
    filters = {k: v for k, v in {"status": status, "type": task_type,
                                 "owner": project}.items() if v is not None}
    with _operator_glint() as glint:
        found = glint.tasks.find(filters, models.utcnow() - age if age else None, limit)
    if not found:
        click.echo("no tasks")
        return
    header = ("ID", "TYPE", "STATUS", "PROJECT", "CREATED", "UPDATED", "ATTEMPTS", "WORKER",
              "MESSAGE")
    rows = [(t.id, t.type, t.status, t.owner, isotime(t.created_at) or "",
             isotime(t.updated_at) or "", f"{t.attempts}/{t.max_attempts}",
             t.lease_owner if t.status == states.PROCESSING and t.lease_owner else "-",
             _one_line(t.message)) for t in found]
    click.echo(_table([header, *rows]))


@task.command("show")
@click.argument("task_id")
def task_show(task_id: str) -> None:
    """Show a task as JSON: what GET /v2/tasks/{id} shows an admin, with its retries,
    whether a cancel was asked, the process it is bound to and its runs (``history``: each
    run's worker, start, end and outcome)."""
    import json

    from glint.dashboard import attempt_view
    from glint.db import attempts
    from glint.tasks import views

    with _operator_glint() as glint, _refusals():
        found = glint.tasks.row(task_id)
        with glint.db.reader() as session:
            runs = attempts.of(session, task_id)
    body = {**views.with_lease(found), "retries": found.retries,
            "cancel_requested": found.cancel_requested, "bound_to": found.bound_to,
            "history": [attempt_view(run) for run in runs]}
    click.echo(json.dumps(body, indent=2))


@task.command("cancel")
@click.argument("task_id")
def task_cancel(task_id: str) -> None:
    """Cancel a task: a pending one fails now, a running one at its script's next check
    (its worker sees the request in the database). A finished task cannot be cancelled."""
    from glint.context import RequestContext

    with _operator_glint() as glint, _refusals():
        done = glint.tasks.cancel(RequestContext.admin(), task_id)
    if done.status == states.FAILURE:
        click.echo(f"task {task_id}: cancelled")
    else:
        click.echo(f"task {task_id}: cancel requested; still {done.status} until its script "
                   "stops")


@task.command("retry")
@click.argument("task_id")
def task_retry(task_id: str) -> None:
    """Create a new task with a failed task's type, input and creator (project, user, roles,
    request id); print the new task's id. The failed task stays as it is.

    The new task goes to the executor its type routes to: to the workers' queue (celery), or,
    with an in-process executor (thread, inline), it runs in this command, which waits for it
    and prints how it ended. A task that needed its caller's credentials, or that worked on an
    image that existed before it (an image import: import the image again), is refused.
    """
    with _operator_glint(executor=None) as glint, _refusals():
        created = glint.tasks.retry(task_id)
        click.echo(created.id)
        if not getattr(glint.router.executor_for(created.type), "remote", False):
            glint.router.shutdown(wait=True)  # the run in this process, to its end
            ended = glint.tasks.row(created.id)
            click.echo(f"task {created.id}: {ended.status}"
                       + (f" ({_one_line(ended.message)})" if ended.message else ""))


@contextlib.contextmanager
def _operator_glint(executor: str | None = "inline") -> Iterator[app.Glint]:
    """glint built from the settings, to act as admin on its tasks; the default executor is
    ``inline`` unless ``executor`` is None (the configured one: retry)."""
    settings = _settings()
    _configure_logging("warning", settings.log_format)
    _require_migrated(settings.effective_database_url)
    glint = _build(settings, executor=executor)
    try:
        with _database_errors(settings.effective_database_url):
            yield glint
    finally:
        glint.close(timeout=0)


_AGE = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _age(text: str) -> datetime.timedelta:
    """``2h``, ``15m``, ``1h30m``... as a timedelta; a usage error (exit 2) otherwise."""
    import datetime

    parts = _AGE.findall(text.strip())
    if not parts or "".join(n + u for n, u in parts) != text.strip():
        raise click.BadParameter(f"{text!r} is not an age such as 90s, 15m, 2h, 1d or 1h30m",
                                 param_hint="--older-than")
    return datetime.timedelta(seconds=sum(float(n) * _SECONDS[u] for n, u in parts))


def _one_line(text: str | None, width: int = 80) -> str:
    line = " ".join((text or "").split())
    return line if len(line) <= width else line[:width - 1] + "…"


# -- scripts ------------------------------------------------------------------------------


@main.command()
def scripts() -> None:
    """List the installed task scripts and whether each is served.

    Each script's entry-point name is a task type. A broken script is listed with the reason
    it is not served, and makes the command exit with status 1 (a deploy check).
    """
    from glint.scripts.registry import Registry

    _settings()
    _configure_logging("warning")
    with _quiet("glint.scripts.registry"):  # broken scripts are in the table, with the reason
        registry = Registry.load()
    rows = [(s.type, s.package, s.version, "ok", s.description) for s in registry]
    rows += [(b.type, b.package, "", "broken", b.reason) for b in registry.broken]
    rows.sort()
    if not rows:
        click.echo("no task scripts installed (entry-point namespace glint.task_scripts)")
        return
    header = ("TYPE", "PACKAGE", "VERSION", "STATUS", "DESCRIPTION / REASON")
    click.echo(_table([header, *rows]))
    if registry.broken:
        raise click.exceptions.Exit(1)


def _table(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    lines = ["  ".join([*(c.ljust(w) for c, w in zip(row, widths, strict=False)), row[-1]])
             for row in rows]
    return "\n".join(line.rstrip() for line in lines)


# -- policy -------------------------------------------------------------------------------


@main.command()
@click.option("--effective", is_flag=True,
              help="Show the rules in force: the policy_file's where it sets one (marked *).")
def policy(effective: bool) -> None:
    """List the policy rules: name, check string and what each governs.

    The defaults are Glance's personas (admin, project member, project reader, service) plus
    one add_task:<type> rule per installed task type; docs/policy.md explains them. The same
    list in oslo.policy's formats: oslopolicy-sample-generator --namespace glint.
    """
    from glint import policy as policies

    settings = _settings()
    _configure_logging("warning")
    with _quiet("glint.scripts.registry"):
        defaults = policies.list_rules()
    overridden: dict[str, str] = {}
    if effective:
        task_types = [d.name.partition(":")[2] for d in defaults if d.name.startswith("add_task:")]
        try:
            enforcer = policies.build_enforcer(settings, task_types)
        except errors.ConfigurationError as exc:
            raise SettingsError(exc.message) from None
        overridden = {name: rule.check_str for name, rule in enforcer.file_rules.items()}
    blocks = []
    for rule in defaults:
        check = overridden.pop(rule.name, None)
        shown = rule.check_str if check is None else f"{check}  *"
        blocks.append(f"{rule.name}\n    {shown or '(always)'}\n    {rule.description}")
    blocks += [f"{name}\n    {check or '(always)'}  *\n    (not a default rule)"
               for name, check in sorted(overridden.items())]
    click.echo("\n\n".join(blocks))


# -- helpers ------------------------------------------------------------------------------


def _settings(**overrides: Any) -> settings_mod.Settings:
    import pydantic
    import pydantic_settings

    from glint import settings as settings_mod

    config_file = os.environ.get(settings_mod.CONFIG_ENV)
    if config_file and not pathlib.Path(config_file).is_file():
        raise SettingsError(f"${settings_mod.CONFIG_ENV} names {config_file}, which is not a file")
    try:
        return settings_mod.load(**overrides)
    except pydantic.ValidationError as exc:
        raise SettingsError(_describe(exc, config_file)) from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"the settings file {config_file} is not valid TOML: {exc}") from None
    except pydantic_settings.SettingsError as exc:  # an environment value that is not JSON
        raise SettingsError(_describe_source_error(exc)) from None


def _describe(exc: pydantic.ValidationError, config_file: str | None) -> str:
    """One line naming each bad setting and where its value came from: the environment
    variable, or the settings file (an unknown key can only come from there)."""
    problems = []
    in_file = _file_keys(config_file)
    for error in exc.errors():
        field = ".".join(str(part) for part in error["loc"]) or "settings"
        name = str(error["loc"][0]) if error["loc"] else ""
        if error["type"] == "extra_forbidden":
            where = f"in the settings file {config_file}" if name in in_file else "given"
            problems.append(f"unknown setting {field} {where} (the README lists the settings)")
            continue
        env = f"GLINT_{name.upper()}"
        source = (f"in the settings file {config_file}"
                  if name in in_file and env not in os.environ else env)
        problems.append(f"invalid setting {field} ({source}): {error['msg']}" if name
                        else f"invalid settings: {error['msg']}")
    return "; ".join(problems)


def _file_keys(config_file: str | None) -> set[str]:
    if not config_file:
        return set()
    with open(config_file, "rb") as file:
        return set(tomllib.load(file))


def _describe_source_error(exc: pydantic_settings.SettingsError) -> str:
    match = re.search(r'field "(\w+)"', str(exc))
    if match is None:
        return f"invalid settings: {exc}"
    field = match.group(1)
    return (f"invalid setting {field} (GLINT_{field.upper()}): the value is not JSON "
            f"(list settings take a JSON list, like '[\"a\", \"b\"]')")


def _build(settings: settings_mod.Settings, **parts: Any) -> app.Glint:
    from glint import app

    with _database_errors(settings.effective_database_url):
        return app.build(settings, **parts)


def _check_stores(glint: app.Glint, unreachable_ok: bool = False) -> None:
    """Stop (exit 2) on stores that cannot read the images already stored; with
    ``unreachable_ok``, a database that cannot be reached now lets it pass unchecked."""
    import sqlalchemy as sa

    url = glint.settings.effective_database_url
    try:
        with _database_errors(url, unreachable_ok):
            glint.check_stores()
    except sa.exc.OperationalError:
        LOG.warning("the stores were not checked against the images already stored: the "
                    "database is unreachable")
    except SettingsError:
        glint.close(timeout=0)
        raise


def _upgrade(url: str, revision: str) -> None:
    from glint.db import migrate as migrations

    with _database_errors(url):
        migrations.upgrade(url, revision)


def _current(url: str) -> str | None:
    from glint.db import migrate as migrations

    with _database_errors(url):
        return migrations.current(url)


@contextlib.contextmanager
def _database_errors(url: str, unreachable_ok: bool = False) -> Iterator[None]:
    """Turn a bad setting or an unreachable database into one line instead of a traceback
    (``unreachable_ok``: let the caller handle an unreachable database)."""
    import sqlalchemy as sa
    from alembic import util as alembic_util

    try:
        yield
    except errors.ConfigurationError as exc:
        raise SettingsError(exc.message) from None
    except sa.exc.ArgumentError as exc:
        raise SettingsError(f"invalid setting database_url (GLINT_DATABASE_URL): {exc}") from None
    except alembic_util.CommandError as exc:  # an unknown revision, say
        raise click.ClickException(str(exc)) from None
    except sa.exc.OperationalError as exc:
        if unreachable_ok:
            raise
        raise click.ClickException(f"cannot use the database {_safe(url)}: {_reason(exc)}"
                                   ) from None


def _reason(exc: sa.exc.OperationalError) -> str:
    return str(exc.orig or exc).strip().splitlines()[0]


def _safe(url: str) -> str:
    """The URL without its password, fit for a terminal or a log."""
    import sqlalchemy as sa

    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return repr(url)


def _configure_logging(level: str, log_format: str = "text") -> None:
    """Log lines to stderr, each with the request and task it is about (glint.logcontext);
    alembic's at warning (`glint db` commands say what they did)."""
    logging.config.dictConfig(logcontext.config(level, log_format))


def _log_config(level: str, log_format: str) -> dict[str, Any]:
    """:func:`_configure_logging` as a ``logging.config`` dictionary, with process ids."""
    return logcontext.config(level, log_format, processes=True)


@contextlib.contextmanager
def _quiet(logger_name: str) -> Iterator[None]:
    logger = logging.getLogger(logger_name)
    previous = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(previous)
