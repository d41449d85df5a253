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
    barecelery,
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
BOUNDS = {"import": SINGLE_PASS, "upload": SINGLE_PASS, "download": ("http_loopback_image",),
          "download_after_upload": ("http_loopback_image",),
          "download_cold": ("disk_read_cold", "http_loopback_image")}
MANY_IMPORTS = ("md5+sha512", "disk_write_fsync", "http_loopback")
MANY_DOWNLOADS = ("disk_read_cold", "http_loopback_image")
STREAM_LIMIT_MIB = 256  # data per stream for the many-stream limits (a rate: enough to settle)


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
        self.say("glint: download right after the upload (the pages the store left cached)")
        downloaded = transfers.download(glint, uploaded.image_id, source.size)
        done["download_after_upload"] = self.transfer(downloaded, {})
        transfers.warm(image_file)
        self.say("limits: loopback HTTP GET of the stored image")
        store_port = self.file_server(image_file.parent, "fileserver-store")
        found["http_loopback_image"] = limits.http_get(store_port, image_file.name, source.size)
        self.say("glint: download")
        with self.profiled(glint, "download") as profiled:
            downloaded = transfers.download(glint, uploaded.image_id, source.size)
        done["download"] = self.transfer(downloaded, profiled)
        self.cold_limits(found, [image_file])
        self.say("glint: download from the disk (the image's pages dropped first)")
        limits.drop_cached(image_file)
        with self.profiled(glint, "download-cold") as profiled:
            downloaded = transfers.download(glint, uploaded.image_id, source.size)
        done["download_cold"] = self.transfer(downloaded, profiled)
        self.procs.stop(glint.process)
        for name, bound_by in BOUNDS.items():
            bound = report.bound(found, bound_by)
            done[name].update(limit=bound.limit, limit_mib_s=round(bound.mib_s, 1),
                              ratio=round(bound.ratio(done[name]["mib_s"]), 3))
        self.results["transfers"] = done

    def cold_limits(self, found: dict[str, float], files: list[pathlib.Path],
                    suffix: str = "") -> None:
        """``disk_read_cold``: the faster of a buffered and a direct ``dd`` of ``files`` (all at
        once), pages dropped first; both are kept."""
        self.say(f"limits: cold read of {len(files)} file(s), buffered and iflag=direct")
        buffered = limits.cold_read(files)
        direct = limits.cold_read(files, direct=True)
        found[f"disk_read_cold_buffered{suffix}"] = buffered
        found[f"disk_read_cold_direct{suffix}"] = direct
        found[f"disk_read_cold{suffix}"] = max(buffered, direct)

    def run_concurrent(self) -> None:
        """``BENCH_STREAMS`` imports at once, then as many downloads of them, from the disk."""
        streams = self.cfg.streams
        www = self.work / "www-concurrent"
        www.mkdir()
        source = transfers.make_source(www / "source.bin", self.data)
        port = self.file_server(www, "fileserver-concurrent")
        data = limits.Data(min(self.cfg.size_mib, STREAM_LIMIT_MIB))
        found: dict[str, float] = {}
        self.say(f"limits: {streams} streams: hashing, disk write, loopback HTTP")
        found["md5+sha512"] = limits.hashing_streams(data, streams, "md5", "sha512")
        found["disk_write_fsync"] = limits.disk_write_streams(data, self.glint_dir, streams)
        found["http_loopback"] = limits.http_get_streams(port, ["source.bin"] * streams,
                                                         source.size)
        data_dir = self.work / "glint-concurrent"
        glint = self.glint(data_dir, "glint-concurrent")
        done: dict[str, Any] = {"streams": streams, "size_mib": self.cfg.size_mib,
                                "idle_rss_mib": round(procs.rss_mib(glint.process.pid), 1)}
        self.say(f"glint: {streams} imports at once")
        with self.profiled(glint, "imports") as profiled:
            imported = transfers.imports(glint, f"http://127.0.0.1:{port}/source.bin", source,
                                         streams)
        done["imports"] = self.many(imported, MANY_IMPORTS, found, profiled)
        files = [data_dir / "images" / image_id for image_id in imported.image_ids]
        for path in files:
            transfers.warm(path)
        store_port = self.file_server(files[0].parent, "fileserver-concurrent-store")
        found["http_loopback_image"] = limits.http_get_streams(
            store_port, [path.name for path in files], source.size)
        self.cold_limits(found, files)
        for path in files:
            limits.drop_cached(path)
        self.say(f"glint: {streams} downloads at once, from the disk")
        with self.profiled(glint, "downloads") as profiled:
            downloaded = transfers.downloads(glint, imported.image_ids, source.size)
        done["downloads_cold"] = self.many(downloaded, MANY_DOWNLOADS, found, profiled)
        self.say("glint: the downloads again, untimed, each md5 checked")
        transfers.check_downloads(glint, imported.image_ids, source)
        rounds = [{"peak_rss_mib": max(done["imports"]["peak_rss_mib"],
                                       done["downloads_cold"]["peak_rss_mib"]),
                   "imports_peak_rss_mib": done["imports"]["peak_rss_mib"],
                   "downloads_peak_rss_mib": done["downloads_cold"]["peak_rss_mib"],
                   "rss_after_mib": round(procs.rss_mib(glint.process.pid), 1)}]
        for number in range(2, self.cfg.rounds + 1):
            self.say(f"glint: round {number} of {streams} imports, then downloads, at once")
            transfers.delete_images(glint, imported.image_ids)
            imported = transfers.imports(glint, f"http://127.0.0.1:{port}/source.bin", source,
                                         streams)
            after_imports = round(procs.rss_mib(glint.process.pid), 1)
            downloaded = transfers.downloads(glint, imported.image_ids, source.size)
            rounds.append({"peak_rss_mib": round(max(imported.watch.peak_mib,
                                                     downloaded.watch.peak_mib), 1),
                           "imports_peak_rss_mib": round(imported.watch.peak_mib, 1),
                           "rss_after_imports_mib": after_imports,
                           "downloads_peak_rss_mib": round(downloaded.watch.peak_mib, 1),
                           "rss_after_mib": round(procs.rss_mib(glint.process.pid), 1)})
        done["rounds"] = rounds
        self.procs.stop(glint.process)
        done["limits_mib_s"] = {k: round(v, 1) for k, v in found.items()}
        self.results["concurrent"] = done

    def many(self, result: transfers.Many, bound_by: tuple[str, ...], found: dict[str, float],
             profiled: dict[str, Any]) -> dict[str, Any]:
        bound = report.bound(found, bound_by)
        watch = result.watch
        return {**({"profile": profiled} if profiled else {}),
                "mib_s": round(result.mib_s, 1), "seconds": round(result.seconds, 2),
                "limit": bound.limit, "limit_mib_s": round(bound.mib_s, 1),
                "ratio": round(bound.ratio(result.mib_s), 3),
                "peak_rss_mib": round(watch.peak_mib, 1),
                "server_cpu_ms_per_mib": round(
                    1000 * watch.cpu_s / (result.count * self.cfg.size_mib), 2),
                "server_threads_cpu_s": {tid: round(cpu, 2) for tid, cpu in sorted(
                    watch.threads.items(), key=lambda item: -item[1])[:8]},
                "machine_busy": round(watch.machine_busy, 3)}

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
            name = f"bench-glint-{secrets.token_hex(3)}"
            try:
                done[kind] = self._through_glint(kind, env, name, port, source)
            finally:
                objects.remove(kind, env, name)
        self.results["objects"] = done

    def _through_glint(self, kind: str, env: dict[str, str], name: str, port: int,
                       source: transfers.Source) -> dict[str, Any]:
        """glint's transfers, each between two runs of the client library's (the host is
        shared: each is judged against the mean of the limits measured just before and after
        it). The import of unknown size goes first, on a fresh server: its peak RSS is a
        target."""
        limits: list[dict[str, float]] = []

        def measure_limit() -> None:
            self.say(f"objects: {kind} client library limits")
            limits.append(objects.client_limits(kind, env, source.path, source.size))

        measure_limit()
        # The image cache off: with it (on by default in front of a remote store) the
        # download would fill the cache, hashing and writing the image as it goes; that
        # download is the cache section's. This one is the store's read path alone.
        glint = self.glint(self.work / f"glint-{kind}", f"glint-{kind}",
                           **objects.glint_settings(kind, env, name), image_cache_enabled="false")
        found: dict[str, Any] = {"idle_rss_mib": round(procs.rss_mib(glint.process.pid), 1)}
        between: dict[str, tuple[int, int]] = {}  # op -> the limits measured around it
        url = f"http://127.0.0.1:{port}/source.bin"
        for op, what, source_url in (("import_unsized", "import, size unknown", f"{url}?unsized"),
                                     ("import", "import", url)):
            self.say(f"objects: glint {what} into {kind}")
            with self.profiled(glint, f"{kind}-{op}") as profiled:
                found[op] = self.transfer(transfers.import_(glint, source_url, source), profiled)
            between[op] = (len(limits) - 1, len(limits))
            measure_limit()
        self.say(f"objects: glint upload into {kind}")
        with self.profiled(glint, f"{kind}-upload") as profiled:
            uploaded = transfers.upload(glint, source)
        found["upload"] = self.transfer(uploaded, profiled)
        self.say(f"objects: glint download from {kind}")
        with self.profiled(glint, f"{kind}-download") as profiled:
            downloaded = transfers.download(glint, uploaded.image_id, source.size)
        found["download"] = self.transfer(downloaded, profiled)
        between["upload"] = between["download"] = (len(limits) - 1, len(limits))
        self.procs.stop(glint.process)
        measure_limit()
        found["limits_mib_s"] = [{k: round(v, 1) for k, v in limit.items()} for limit in limits]
        for op, against in objects.AGAINST.items():
            around = [limits[i] for i in between[op]]
            mib_s = sum(limit[against] for limit in around) / len(around)
            cpu = sum(limit[f"{against}_cpu_s_gib"] for limit in around) / len(around)
            found[op].update(limit_mib_s=round(mib_s, 1), limit_cpu_s_gib=round(cpu, 2),
                             ratio=round(found[op]["mib_s"] / mib_s, 3))
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

    def profiled_pid(self, pid: int,
                     name: str) -> contextlib.AbstractContextManager[dict[str, Any]]:
        """:meth:`profiled` for any process (a ``glint worker``)."""
        if not self.cfg.profile:
            return contextlib.nullcontext({})
        return profile.record(self.procs, pid, self.cfg.results.parent / f"profile-{name}.txt",
                              self.work / f"py-spy-{name}.log")

    def run_dispatch(self) -> None:
        glint = self.glint(self.work / "glint-dispatch", "glint-dispatch")
        url = glint.env.get("GLINT_DATABASE_URL") or _sqlite(self.work / "glint-dispatch")
        self.say("dispatch: thread executor")
        with self.profiled(glint, "dispatch-thread") as profiled:
            result = self._dispatch_with(glint, url, "thread")
        if profiled:
            result["profile"] = profiled
        self.procs.stop(glint.process)
        self.say("dispatch: raw SQLite, a task's three transactions (the thread executor's anchor)")
        anchor = dispatch.sqlite_loop(self.work / "sqlite-anchor.db", self.cfg.dispatch_burst)
        result["sqlite_loop_per_s"] = round(anchor, 1)
        result["ratio_to_sqlite_loop"] = round(result["burst"]["per_s"] / anchor, 3)
        self.results.setdefault("dispatch", {})["thread"] = result

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
                with self.profiled(glint, "dispatch-celery-serve") as serving, \
                        self.profiled_pid(worker.pid, "dispatch-celery-worker") as working:
                    result = self._dispatch_with(glint, url, "celery")
                if serving or working:
                    result["profile"] = {"serve": serving, "worker": working}
                result["broker"] = self.cfg.broker_url.split("@")[-1]
                self.procs.stop(worker)
                self.procs.stop(glint.process)
                result["bare_celery"] = self._bare_celery(queue)
                bare = result["bare_celery"]["defaults_per_s"]
                result["ratio_to_bare_celery"] = round(result["burst"]["per_s"] / bare, 3)
                self.results.setdefault("dispatch", {})["celery"] = result
            finally:
                services.delete_queue(self.cfg.broker_url, queue)

    def _bare_celery(self, queue: str) -> dict[str, Any]:
        """The anchor: bare Celery, same broker, pool, concurrency and task count."""
        found: dict[str, Any] = {"tasks": self.cfg.dispatch_burst,
                                 "clients": self.cfg.dispatch_clients, "pool": "threads",
                                 "concurrency": 8}
        for strict, key in ((False, "defaults_per_s"), (True, "glint_delivery_per_s")):
            self.say(f"dispatch: bare Celery, {key.removesuffix('_per_s')} settings")
            name = f"{queue}-bare-{int(strict)}"
            try:
                found[key] = round(barecelery.run(
                    self.procs, self.cfg.broker_url, name, strict, self.cfg.dispatch_burst,
                    self.cfg.dispatch_clients, 8, self.work), 1)
            finally:
                services.delete_queue(self.cfg.broker_url, name)
        return found

    def run_api(self) -> None:
        """Each table size, served by each number of API worker processes in turn; on each
        database of ``BENCH_API_DATABASES`` (sqlite, postgresql)."""
        runs = []
        for database in self.cfg.api_databases:
            if database == "sqlite":
                runs.append(self._api_on("sqlite", self.work / "glint-api", None))
                continue
            try:
                with services.postgres_database(self.cfg.postgres_url) as url:
                    runs.append(self._api_on("postgresql", self.work / "glint-api-pg", url))
            except services.Unavailable as exc:
                self.say(f"api: postgresql skipped: {exc}")
                runs.append({"database": "postgresql", "skipped": str(exc)})
        # The first run keeps the shape earlier results had; every run is under "runs".
        self.results["api"] = {**runs[0], "runs": runs}

    def _api_on(self, database: str, data_dir: pathlib.Path, url: str | None) -> dict[str, Any]:
        levels = []
        settings = {} if url is None else {"database_url": url}
        db_url = url or _sqlite(data_dir)
        for tasks in self.cfg.api_levels:
            for workers in self.cfg.api_workers:
                self.say(f"api: {database}, {tasks} tasks, concurrency "
                         f"{self.cfg.api_concurrency}, {workers} API worker(s)")
                glint = self.glint(data_dir, f"glint-api-{database}-{workers}", workers,
                                   **settings)
                level = api.measure(glint.port, db_url, tasks, self.cfg.api_concurrency,
                                    self.cfg.api_seconds)
                self.procs.stop(glint.process)
                levels.append({"tasks": level.tasks, "workers": workers, **{
                    key: report.latency_dict(getattr(level, key))
                    for key in ("get_one", "get", "list_one", "list")}})
        return {"concurrency": self.cfg.api_concurrency, "database": database,
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
