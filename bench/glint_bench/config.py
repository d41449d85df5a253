"""The harness's settings, read once from ``BENCH_*`` environment variables."""

from __future__ import annotations

import dataclasses
import os
import pathlib

SECTIONS = ("limits", "transfers", "concurrent", "objects", "dispatch", "celery", "api", "keystone")


@dataclasses.dataclass(frozen=True)
class Config:
    size_mib: int = 1024  # BENCH_SIZE_MIB: image size for the data path
    work_dir: pathlib.Path = pathlib.Path("bench/work")  # BENCH_WORK_DIR: glint's data dir lives here
    results: pathlib.Path = pathlib.Path("bench/results/latest.json")  # BENCH_RESULTS
    sections: tuple[str, ...] = SECTIONS  # BENCH_ONLY=limits,transfers,...
    profile: bool = False  # BENCH_PROFILE=1: py-spy glint serve during transfers
    streams: int = 8  # BENCH_STREAMS: transfers at once in the concurrent section
    rounds: int = 1  # BENCH_ROUNDS: of those imports and downloads (memory across rounds)
    dispatch_idle: int = 200  # BENCH_DISPATCH_IDLE: tasks created one at a time
    dispatch_burst: int = 1000  # BENCH_DISPATCH_BURST: tasks created at once
    dispatch_clients: int = 16  # BENCH_DISPATCH_CLIENTS
    api_levels: tuple[int, ...] = (1_000, 10_000, 100_000)  # BENCH_API_LEVELS
    api_concurrency: int = 32  # BENCH_API_CONCURRENCY
    api_workers: tuple[int, ...] = (1, 2)  # BENCH_API_WORKERS: glint serve --workers, each
    api_databases: tuple[str, ...] = ("sqlite",)  # BENCH_API_DATABASES=sqlite,postgresql
    api_seconds: float = 5.0  # BENCH_API_SECONDS per endpoint, level and concurrency
    broker_url: str = "amqp://guest:guest@127.0.0.1:5672//"  # BENCH_BROKER_URL
    postgres_url: str = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"  # BENCH_POSTGRES_URL
    keystone_url: str = "http://127.0.0.1:5000"  # BENCH_KEYSTONE_URL: run_tempest.sh's Keystone
    keystone_clients: int = 200  # BENCH_KEYSTONE_CLIENTS: connections sending bad tokens
    keystone_seconds: float = 5.0  # BENCH_KEYSTONE_SECONDS: per flood, and idle

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Config:
        env = dict(os.environ if env is None else env)
        base = cls()
        sections = tuple(s for s in env.get("BENCH_ONLY", "").split(",") if s) or SECTIONS
        unknown = set(sections) - set(SECTIONS)
        if unknown:
            raise SystemExit(f"BENCH_ONLY: unknown sections {sorted(unknown)}; known: {SECTIONS}")
        levels = env.get("BENCH_API_LEVELS")
        workers = env.get("BENCH_API_WORKERS")
        return cls(
            size_mib=int(env.get("BENCH_SIZE_MIB", base.size_mib)),
            work_dir=pathlib.Path(env.get("BENCH_WORK_DIR", base.work_dir)),
            results=pathlib.Path(env.get("BENCH_RESULTS", base.results)),
            sections=sections,
            profile=env.get("BENCH_PROFILE", "") not in ("", "0"),
            streams=int(env.get("BENCH_STREAMS", base.streams)),
            rounds=int(env.get("BENCH_ROUNDS", base.rounds)),
            dispatch_idle=int(env.get("BENCH_DISPATCH_IDLE", base.dispatch_idle)),
            dispatch_burst=int(env.get("BENCH_DISPATCH_BURST", base.dispatch_burst)),
            dispatch_clients=int(env.get("BENCH_DISPATCH_CLIENTS", base.dispatch_clients)),
            api_levels=tuple(int(x) for x in levels.split(",")) if levels else base.api_levels,
            api_concurrency=int(env.get("BENCH_API_CONCURRENCY", base.api_concurrency)),
            api_workers=tuple(int(x) for x in workers.split(",")) if workers else base.api_workers,
            api_databases=tuple(d for d in env.get("BENCH_API_DATABASES", "").split(",") if d)
            or base.api_databases,
            api_seconds=float(env.get("BENCH_API_SECONDS", base.api_seconds)),
            broker_url=env.get("BENCH_BROKER_URL", base.broker_url),
            postgres_url=env.get("BENCH_POSTGRES_URL", base.postgres_url),
            keystone_url=env.get("BENCH_KEYSTONE_URL", base.keystone_url),
            keystone_clients=int(env.get("BENCH_KEYSTONE_CLIENTS", base.keystone_clients)),
            keystone_seconds=float(env.get("BENCH_KEYSTONE_SECONDS", base.keystone_seconds)),
        )
