"""One benchmark run: the machine's limits, then glint against them (the harness's root).

Everything the run starts is registered with one :class:`glint_bench.procs.Processes` and
stopped in a ``finally``, as is the scratch directory removed: Ctrl-C (or SIGTERM, turned
into the same exception) or an error leaves no server running and no database behind.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
import os
import pathlib
import secrets
import shutil
import signal
import sys
import time
import types
from importlib import metadata
from typing import Any

from glint_bench import (
    api,
    cache,
    config,
    dispatch,
    keystone,
    limits,
    machine,
    objects,
    procs,
    profile,
    report,
    services,
    transfers,
)

# Which limits bound which operation (the slowest of them does).
SINGLE_PASS = ("md5+sha512", "disk_write_fsync", "http_loopback")
BOUNDS = {"import": SINGLE_PASS, "upload": SINGLE_PASS, "download": ("http_loopback_image",)}


class Run:
    def __init__(self, cfg: config.Config, processes: procs.Processes, work: pathlib.Path) -> None:
        self.cfg = cfg
        self.procs = processes
        self.work = work
        self.results: dict[str, Any] = {}
        self.data = limits.Data(cfg.size_mib)
        self.glint_dir = work / "glint"
        self.glint_dir.mkdir(parents=True)

    def say(self, text: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)

    # -- servers -------------------------------------------------------------------------

    def file_server(self, root: pathlib.Path, name: str) -> int:
        process = self.procs.start([sys.executable, "-m", "glint_bench.fileserver", str(root)],
                                   os.environ, self.work / f"{name}.log", stdout_pipe=True)
        assert process.stdout is not None
        return int(process.stdout.readline())

    def glint(self, data_dir: pathlib.Path, name: str, workers: int = 1,
              **settings: str) -> procs.Glint:
        env = procs.glint_env(data_dir, **settings)
        return procs.start_glint(self.procs, env, _free_port(), self.work / f"{name}.log",
                                 workers)

    # -- sections ------------------------------------------------------------------------

    def run_limits(self) -> None:
        found: dict[str, float] = {}
        self.say(f"limits: hashing {self.cfg.size_mib} MiB")
        found["md5"] = limits.hashing(self.data, "md5")
        found["sha512"] = limits.hashing(self.data, "sha512")
        found["md5+sha512"] = limits.hashing(self.data, "md5", "sha512")
        self.say("limits: disk write with fsync")
        found["disk_write_fsync"] = limits.disk_write(self.data, self.glint_dir)
        self.results["limits_mib_s"] = found

    def run_transfers(self) -> None:
        www = self.work / "www"
        www.mkdir()
        self.say(f"source: {self.cfg.size_mib} MiB file")
        source = transfers.make_source(www / "source.bin", self.data)
        port = self.file_server(www, "fileserver")
        found = self.results.setdefault("limits_mib_s", {})
        self.say("limits: loopback HTTP GET")
        found["http_loopback"] = limits.http_get(port, "source.bin", source.size)
        glint = self.glint(self.glint_dir, "glint-transfers")
        done: dict[str, Any] = {"size_mib": self.cfg.size_mib,
                                "idle_rss_mib": round(procs.rss_mib(glint.process.pid), 1)}
        self.say("glint: import")
        with self.profiled(glint, "import") as profiled:
            imported = transfers.import_(glint, f"http://127.0.0.1:{port}/source.bin", source)
        done["import"] = self.transfer(imported, profiled)
        self.say("glint: upload")
        with self.profiled(glint, "upload") as profiled:
            uploaded = transfers.upload(glint, source)
        done["upload"] = self.transfer(uploaded, profiled)
        image_file = self.glint_dir / "images" / uploaded.image_id
        transfers.warm(image_file)
        self.say("limits: loopback HTTP GET of the stored image")
        store_port = self.file_server(image_file.parent, "fileserver-store")
        found["http_loopback_image"] = limits.http_get(store_port, image_file.name, source.size)
        self.say("glint: download")
        with self.profiled(glint, "download") as profiled:
            downloaded = transfers.download(glint, uploaded.image_id, source.size)
        done["download"] = self.transfer(downloaded, profiled)
        self.procs.stop(glint.process)
        for name, bound_by in BOUNDS.items():
            bound = report.bound(found, bound_by)
            done[name].update(limit=bound.limit, limit_mib_s=round(bound.mib_s, 1),
                              ratio=round(bound.ratio(done[name]["mib_s"]), 3))
        self.results["transfers"] = done

    def run_objects(self) -> None:
        """Import, upload and download through the swift and s3 stores, against the client
        libraries moving the same bytes to the same (local, one-node) Swift."""
        try:
            env = objects.start_swift()
        except objects.Unavailable as exc:
            self.say(f"objects: skipped: {exc}")
            self.results["objects"] = {"skipped": str(exc)}
            return
        www = self.work / "www-objects"
        www.mkdir()
        source = transfers.make_source(www / "source.bin", self.data)
        port = self.file_server(www, "fileserver-objects")
        done: dict[str, Any] = {"size_mib": self.cfg.size_mib,
                                "segment_mib": objects.SEGMENT_MIB,
                                "in_flight": objects.IN_FLIGHT}
        for kind in ("swift", "s3"):
            self.say(f"objects: {kind} client library limits")
            limit = objects.client_limits(kind, env, source.path, source.size)
            name = f"bench-glint-{secrets.token_hex(3)}"
            try:
                done[kind] = self._through_glint(kind, env, name, port, source, limit)
            finally:
                objects.remove(kind, env, name)
        self.results["objects"] = done

    def _through_glint(self, kind: str, env: dict[str, str], name: str, port: int,
                       source: transfers.Source, limit: dict[str, float]) -> dict[str, Any]:
        glint = self.glint(self.work / f"glint-{kind}", f"glint-{kind}",
                           **objects.glint_settings(kind, env, name))
        found: dict[str, Any] = {"limits_mib_s": {k: round(v, 1) for k, v in limit.items()},
                                 "idle_rss_mib": round(procs.rss_mib(glint.process.pid), 1)}
        self.say(f"objects: glint import into {kind}")
        imported = transfers.import_(glint, f"http://127.0.0.1:{port}/source.bin", source)
        found["import"] = self.transfer(imported, {})
        self.say(f"objects: glint upload into {kind}")
        uploaded = transfers.upload(glint, source)
        found["upload"] = self.transfer(uploaded, {})
        self.say(f"objects: glint download from {kind}")
        found["download"] = self.transfer(
            transfers.download(glint, uploaded.image_id, source.size), {})
        self.procs.stop(glint.process)
        for op, against in (("import", "upload"), ("upload", "upload"), ("download", "download")):
            found[op].update(limit_mib_s=round(limit[against], 1),
                             ratio=round(found[op]["mib_s"] / limit[against], 3))
        return found

    def run_cache(self) -> None:
        """A download from Swift that fills the image cache, then one from the cache."""
        try:
            env = objects.start_swift()
        except objects.Unavailable as exc:
            self.say(f"cache: skipped: {exc}")
            self.results["cache"] = {"skipped": str(exc)}
            return
        www = self.work / "www-cache"
        www.mkdir()
        source = transfers.make_source(www / "source.bin", self.data)
        self.say("cache: swift client library limits")
        limit = objects.client_limits("swift", env, source.path, source.size)
        name = f"bench-cache-{secrets.token_hex(3)}"
        try:
            self.results["cache"] = self._cache(env, name, source, limit["download"])
        finally:
            objects.remove("swift", env, name)

    def _cache(self, env: dict[str, str], name: str, source: transfers.Source,
               store_limit: float) -> dict[str, Any]:
        data_dir = self.work / "glint-cache"
        glint = self.glint(data_dir, "glint-cache", **objects.glint_settings("swift", env, name))
        uploaded = transfers.upload(glint, source)
        self.say("cache: glint download from swift, filling the cache")
        filling = self.transfer(transfers.download(glint, uploaded.image_id, source.size), {})
        cache.wait_cached(glint, uploaded.image_id)
        cached_file = cache.cache_file(data_dir, uploaded.image_id)
        transfers.warm(cached_file)
        self.say("limits: loopback sendfile GET of the cached file")
        port = self.file_server(cached_file.parent, "fileserver-cache")
        sendfile_limit = limits.http_get(port, cached_file.name, source.size)
        self.say("cache: glint download from the cache")
        cached = self.transfer(transfers.download(glint, uploaded.image_id, source.size), {})
        fills = cache.fills(glint)
        self.procs.stop(glint.process)
        filling.update(limit="swift client GET", limit_mib_s=round(store_limit, 1),
                       ratio=round(filling["mib_s"] / store_limit, 3))
        cached.update(limit="loopback sendfile of the cached file",
                      limit_mib_s=round(sendfile_limit, 1),
                      ratio=round(cached["mib_s"] / sendfile_limit, 3))
        return {"size_mib": self.cfg.size_mib, "uncached_filling": filling, "cached": cached,
                "fills": fills}

    def transfer(self, result: transfers.Transfer, profiled: dict[str, Any]) -> dict[str, Any]:
        watch = result.watch
        threads = sorted(watch.threads.items(), key=lambda item: -item[1])
        out: dict[str, Any] = {
            "mib_s": round(result.mib_s, 1), "seconds": round(result.seconds, 2),
            "peak_rss_mib": round(watch.peak_mib, 1),
            "server_cpu_s": round(watch.cpu_s, 2),
            "server_cpu_ms_per_mib": round(1000 * watch.cpu_s / self.cfg.size_mib, 2),
            "server_threads_cpu_s": {name: round(cpu, 2) for name, cpu in threads[:8]},
            "machine_busy": round(watch.machine_busy, 3)}
        if profiled:
            out["profile"] = profiled
            names = profile.thread_names(profiled)
            out["server_threads_cpu_s"] = {f"{tid} {names.get(tid, '')}".strip(): cpu
                                           for tid, cpu in out["server_threads_cpu_s"].items()}
        return out

    def profiled(self, glint: procs.Glint,
                 name: str) -> contextlib.AbstractContextManager[dict[str, Any]]:
        """py-spy on glint serve during a transfer, with ``BENCH_PROFILE=1``."""
        if not self.cfg.profile:
            return contextlib.nullcontext({})
        return profile.record(self.procs, glint.process.pid,
                              self.cfg.results.parent / f"profile-{name}.txt",
                              self.work / f"py-spy-{name}.log")

    def run_dispatch(self) -> None:
        glint = self.glint(self.work / "glint-dispatch", "glint-dispatch")
        url = glint.env.get("GLINT_DATABASE_URL") or _sqlite(self.work / "glint-dispatch")
        self.say("dispatch: thread executor")
        with self.profiled(glint, "dispatch-thread") as profiled:
            result = self._dispatch_with(glint, url, "thread")
        if profiled:
            result["profile"] = profiled
        self.results.setdefault("dispatch", {})["thread"] = result
        self.procs.stop(glint.process)

    def _dispatch_with(self, glint: procs.Glint, url: str, executor: str) -> dict[str, Any]:
        found = dispatch.run(glint, url, executor, self.cfg.dispatch_idle,
                             self.cfg.dispatch_burst, self.cfg.dispatch_clients)
        return {"idle": report.latency_dict(found.idle),
                "burst": report.latency_dict(found.burst),
                "burst_create_per_s": round(found.burst_create_per_s, 1),
                "burst_clients": self.cfg.dispatch_clients}

    def run_celery(self) -> None:
        missing = services.celery_missing(self.cfg.broker_url)
        if missing is None:
            try:
                self._celery()
                return
            except services.Unavailable as exc:
                missing = str(exc)
        self.say(f"dispatch: celery skipped: {missing}")
        self.results.setdefault("dispatch", {})["celery"] = {"skipped": missing}

    def _celery(self) -> None:
        queue = f"glint-bench-{secrets.token_hex(4)}"
        with services.postgres_database(self.cfg.postgres_url) as url:
            settings = {"executor": "celery", "database_url": url, "task_default_queue": queue,
                        "broker_url": self.cfg.broker_url}
            try:
                glint = self.glint(self.work / "glint-celery", "glint-celery", **settings)
                log = self.work / "worker.log"
                worker = self.procs.start(
                    [str(procs.BIN / "glint"), "worker", "--concurrency", "8", "--log-level",
                     "warning"], glint.env, log, stop_signal=signal.SIGQUIT)
                dispatch.warm_up(glint, worker, log)
                self.say("dispatch: celery executor (RabbitMQ, PostgreSQL, 1 worker)")
                result = self._dispatch_with(glint, url, "celery")
                result["broker"] = self.cfg.broker_url.split("@")[-1]
                self.results.setdefault("dispatch", {})["celery"] = result
                self.procs.stop(worker)
                self.procs.stop(glint.process)
            finally:
                services.delete_queue(self.cfg.broker_url, queue)

    def run_api(self) -> None:
        """Each table size, served by each number of API worker processes in turn."""
        data_dir = self.work / "glint-api"
        levels = []
        for tasks in self.cfg.api_levels:
            for workers in self.cfg.api_workers:
                self.say(f"api: {tasks} tasks, concurrency {self.cfg.api_concurrency}, "
                         f"{workers} API worker(s)")
                glint = self.glint(data_dir, f"glint-api-{workers}", workers)
                level = api.measure(glint.port, _sqlite(data_dir), tasks,
                                    self.cfg.api_concurrency, self.cfg.api_seconds)
                self.procs.stop(glint.process)
                levels.append({"tasks": level.tasks, "workers": workers, **{
                    key: report.latency_dict(getattr(level, key))
                    for key in ("get_one", "get", "list_one", "list")}})
        self.results["api"] = {"concurrency": self.cfg.api_concurrency, "database": "sqlite",
                               "levels": levels}

    def run_keystone(self) -> None:
        """An authenticated GET while clients flood glint with bad tokens (keystone.py)."""
        ks = keystone.Keystone(self.cfg.keystone_url,
                               os.environ.get("GLANCE_SERVICE_PASSWORD", "glance-service-pw"),
                               os.environ.get("DEMO_PASSWORD", "demo-pw"))
        missing = ks.missing()
        if missing is not None:
            self.say(f"keystone: skipped: {missing}")
            self.results["keystone"] = {"skipped": missing}
            return
        glint = self.glint(self.work / "glint-keystone", "glint-keystone",
                           **dict(keystone.settings(ks)))
        self.say(f"keystone: idle, then {self.cfg.keystone_clients} clients sending bad tokens")
        found = keystone.measure(glint.port, ks, self.cfg.keystone_clients,
                                 self.cfg.keystone_seconds)
        self.procs.stop(glint.process)
        idle = found["idle"].latency
        self.results["keystone"] = {
            "clients": self.cfg.keystone_clients, "request": f"GET {keystone.PATH}",
            **{name: {**report.latency_dict(f.latency), "timed_out": f.timed_out,
                      "flood_answers": f.flood_answers,
                      "p50_ratio": round(f.latency.p50_ms / idle.p50_ms, 1),
                      "p99_ratio": round(f.latency.p99_ms / idle.p99_ms, 1)}
               for name, f in found.items()}}


def _sqlite(data_dir: pathlib.Path) -> str:
    return f"sqlite:///{(data_dir / 'glint.db').resolve()}"


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _terminate(_signum: int, _frame: types.FrameType | None) -> None:
    raise KeyboardInterrupt  # unwinds through every finally, like Ctrl-C


def _noop_installed() -> bool:
    return bool(metadata.entry_points(group="glint.task_scripts", name="noop"))


def main() -> int:
    cfg = config.Config.from_env()
    signal.signal(signal.SIGTERM, _terminate)
    if {"dispatch", "celery"} & set(cfg.sections) and not _noop_installed():
        print("the `noop` task script is not installed: run `make bench` "
              "(or pip install -e bench)", file=sys.stderr)
        return 2
    work = (cfg.work_dir / f"run-{os.getpid()}").resolve()
    processes = procs.Processes()
    run = Run(cfg, processes, work)
    started = datetime.datetime.now(datetime.UTC)
    run.results.update(started=started.isoformat(timespec="seconds"),
                       command="make bench", size_mib=cfg.size_mib,
                       machine=machine.describe(work))
    try:
        for section in config.SECTIONS:
            if section in cfg.sections:
                getattr(run, f"run_{section}")()
    except KeyboardInterrupt:
        print("interrupted: servers stopped, nothing written", file=sys.stderr)
        return 130
    finally:
        processes.close()
        shutil.rmtree(work, ignore_errors=True)
    run.results["machine"]["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    run.results["targets"] = [dataclasses.asdict(t) for t in report.targets(run.results)]
    cfg.results.parent.mkdir(parents=True, exist_ok=True)
    cfg.results.write_text(json.dumps(run.results, indent=2) + "\n")
    print(report.table(run.results))
    print(f"\nwritten: {cfg.results}", file=sys.stderr)
    return 0
