"""The run's results as a table, and the issue's targets checked against them."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from glint_bench import stats

TRANSFERS = ("import", "upload", "download_after_upload", "download", "download_cold")
SINGLE_PASS_RATIO = 0.85
DOWNLOAD_MIB_S = 1536.0
RSS_MIB = 150.0
THREAD_P50_MS = 5.0
CELERY_P50_MS = 30.0
BARE_CELERY_RATIO = 0.5  # the celery executor's burst tasks/s, of bare Celery's
THREAD_PER_S = 500.0  # the thread executor's burst tasks/s
LIST_P99_MS = 20.0
LIST_GROWTH = 1.5
OBJECT_WRITE_RATIO = 0.85  # import and upload into an object store, of the client library's
OBJECT_READ_RATIO = 0.90  # download from it
COLD_READ_RATIO = 0.90  # a download from the disk, of the same run's cold read of the file
MANY_RATIO = 0.90  # many transfers at once, of the same run's limit for as many streams
OBJECT_RSS_MIB = 200.0  # server peak RSS during an import (the store is never told the size)


def bound(limits: Mapping[str, float], names: Sequence[str]) -> stats.Bound:
    return stats.bounding(limits, names)


def latency_dict(found: stats.Latency) -> dict[str, float]:
    return {"count": found.count, "p50_ms": round(found.p50_ms, 2),
            "p99_ms": round(found.p99_ms, 2), "per_s": round(found.per_s, 1)}


@dataclasses.dataclass(frozen=True)
class Target:
    name: str
    wanted: str
    measured: str
    met: bool | None  # None: not measured in this run


def targets(results: Mapping[str, Any]) -> list[Target]:
    found: list[Target] = []
    moved = results.get("transfers")
    if moved:
        for name in ("import", "upload"):
            t = moved[name]
            found.append(Target(f"{name} vs single-pass limit", f">= {SINGLE_PASS_RATIO:.0%}",
                                f"{t['ratio']:.0%} ({t['mib_s']:.0f} of {t['limit_mib_s']:.0f} "
                                f"MiB/s, {t['limit']})", t["ratio"] >= SINGLE_PASS_RATIO))
        d = moved["download"]
        found.append(Target("download", f">= {DOWNLOAD_MIB_S:.0f} MiB/s",
                            f"{d['mib_s']:.0f} MiB/s ({d['ratio']:.0%} of {d['limit']})",
                            d["mib_s"] >= DOWNLOAD_MIB_S))
        cold = moved.get("download_cold")
        if cold:
            found.append(Target("download from the disk vs its bound", f">= {COLD_READ_RATIO:.0%}",
                                f"{cold['ratio']:.0%} ({cold['mib_s']:.0f} of "
                                f"{cold['limit_mib_s']:.0f} MiB/s, {cold['limit']})",
                                cold["ratio"] >= COLD_READ_RATIO))
        peak = max(moved[n]["peak_rss_mib"] for n in TRANSFERS if n in moved)
        found.append(Target(f"server peak RSS, {moved['size_mib']} MiB transfers",
                            f"< {RSS_MIB:.0f} MiB", f"{peak:.0f} MiB", peak < RSS_MIB))
    found += _concurrent_targets(results.get("concurrent") or {})
    found += _object_targets(results.get("objects") or {})
    found += _cache_targets(results.get("cache") or {})
    found += _dispatch_targets(results.get("dispatch") or {})
    levels = (results.get("api") or {}).get("levels") or []
    if levels:  # judged on the most API workers measured (a deployment uses them all)
        most = max(level.get("workers", 1) for level in levels)
        served = [level for level in levels if level.get("workers", 1) == most]
        first, last = served[0], served[-1]
        p99 = last["list"]["p99_ms"]
        found.append(Target(f"list page p99 at {last['tasks']} tasks, "
                            f"c={results['api']['concurrency']}, {most} API worker(s)",
                            f"< {LIST_P99_MS:.0f} ms", f"{p99:.1f} ms", p99 < LIST_P99_MS))
        growth = p99 / first["list"]["p99_ms"]
        found.append(Target(f"list page p99 growth {first['tasks']} -> {last['tasks']} tasks",
                            f"<= {LIST_GROWTH}x", f"{growth:.2f}x", growth <= LIST_GROWTH))
    return found


def _concurrent_targets(many: Mapping[str, Any]) -> list[Target]:
    found = []
    for name in ("imports", "downloads_cold"):
        if name not in many:
            continue
        t = many[name]
        found.append(Target(f"{many['streams']} {name.replace('_cold', ' from the disk')} at "
                            "once vs their bound", f">= {MANY_RATIO:.0%}",
                            f"{t['ratio']:.0%} ({t['mib_s']:.0f} of {t['limit_mib_s']:.0f} MiB/s, "
                            f"{t['limit']})", t["ratio"] >= MANY_RATIO))
    if many:
        peak = max(many[n]["peak_rss_mib"] for n in ("imports", "downloads_cold"))
        found.append(Target(f"server peak RSS, {many['streams']} transfers at once",
                            f"<= {RSS_MIB:.0f} MiB", f"{peak:.0f} MiB", peak <= RSS_MIB))
    return found


def _concurrent_table(many: Mapping[str, Any]) -> list[str]:
    if not many:
        return []
    limits = ", ".join(f"{k} {v:.0f}" for k, v in sorted(many["limits_mib_s"].items()))
    return ["", f"{many['streams']} transfers of {many['size_mib']} MiB at once (aggregate; "
                f"limits for as many streams, MiB/s: {limits})",
            *_rows(["glint", "MiB/s", "s", "bound by", "limit MiB/s", "ratio", "peak RSS MiB",
                    "server CPU ms/MiB", "machine busy"],
                   [[n, t["mib_s"], t["seconds"], t["limit"], t["limit_mib_s"],
                     f"{t['ratio']:.0%}", t["peak_rss_mib"], t["server_cpu_ms_per_mib"],
                     f"{t['machine_busy']:.0%}"]
                    for n, t in ((n, many[n]) for n in ("imports", "downloads_cold"))]),
            "server RSS by round (peak / after), MiB: " + ", ".join(
                f"{r['peak_rss_mib']:.0f} / {r['rss_after_mib']:.0f}"
                for r in many.get("rounds", []))]


def _object_targets(moved: Mapping[str, Any]) -> list[Target]:
    found = []
    for kind in ("swift", "s3"):
        if kind not in moved:
            continue
        for op in _object_ops(moved[kind]):
            t = moved[kind][op]
            wanted = OBJECT_READ_RATIO if op == "download" else OBJECT_WRITE_RATIO
            found.append(Target(f"{kind} {_OBJECT_OPS[op]} vs client library", f">= {wanted:.0%}",
                                f"{t['ratio']:.0%} ({t['mib_s']:.0f} of {t['limit_mib_s']:.0f} "
                                "MiB/s)", t["ratio"] >= wanted))
        judged = "import_unsized" if "import_unsized" in moved[kind] else "import"
        peak = moved[kind][judged]["peak_rss_mib"]
        found.append(Target(f"{kind} {_OBJECT_OPS[judged]} server peak RSS",
                            f"<= {OBJECT_RSS_MIB:.0f} MiB", f"{peak:.0f} MiB",
                            peak <= OBJECT_RSS_MIB))
    return found


CACHE_RATIO = 0.90  # the image cache's downloads, of their limits in the same run
CACHE_ROWS = (("uncached_filling", "download from swift, filling the cache"),
              ("cached", "download from the cache"))


def _cache_targets(moved: Mapping[str, Any]) -> list[Target]:
    if not moved or "skipped" in moved:
        return []
    return [Target(f"{label} vs {moved[key]['limit']}", f">= {CACHE_RATIO:.0%}",
                   f"{moved[key]['ratio']:.0%} ({moved[key]['mib_s']:.0f} of "
                   f"{moved[key]['limit_mib_s']:.0f} MiB/s)", moved[key]["ratio"] >= CACHE_RATIO)
            for key, label in CACHE_ROWS]


def _cache_table(moved: Mapping[str, Any]) -> list[str]:
    if not moved or "skipped" in moved:
        return ["", f"image cache: skipped ({moved.get('skipped')})"] if moved else []
    rows = [[label, moved[key]["mib_s"], moved[key]["limit"], moved[key]["limit_mib_s"],
             f"{moved[key]['ratio']:.0%}", moved[key]["peak_rss_mib"],
             moved[key]["server_cpu_ms_per_mib"]] for key, label in CACHE_ROWS]
    return ["", f"image cache (swift store, local one-node Swift): image {moved['size_mib']} "
                f"MiB; fills {moved.get('fills')}",
            *_rows(["glint", "MiB/s", "limit", "limit MiB/s", "ratio", "peak RSS MiB",
                    "server CPU ms/MiB"], rows)]


def _object_table(moved: Mapping[str, Any]) -> list[str]:
    if not moved or "skipped" in moved:
        return ["", f"object stores: skipped ({moved.get('skipped')})"] if moved else []
    out = ["", f"object stores on a local one-node Swift: image {moved['size_mib']} MiB, "
               f"{moved['segment_mib']} MiB segments, {moved['in_flight']} in flight, image cache off"]
    rows = []
    for kind in ("swift", "s3"):
        for op in _object_ops(moved[kind]):
            t = moved[kind][op]
            rows.append([kind, _OBJECT_OPS[op], t["mib_s"], t["limit_mib_s"], f"{t['ratio']:.0%}",
                         t["peak_rss_mib"], round(t["server_cpu_ms_per_mib"] * 1.024, 2),
                         t.get("limit_cpu_s_gib", "-"), f"{t['machine_busy']:.0%}"])
    return out + _rows(["store", "glint", "MiB/s", "client lib MiB/s", "ratio", "peak RSS MiB",
                        "server CPU s/GiB", "client lib CPU s/GiB", "machine busy"], rows)


_OBJECT_OPS = {"import": "import", "import_unsized": "import, size unknown", "upload": "upload",
               "download": "download"}


def _object_ops(measured: Mapping[str, Any]) -> list[str]:
    return [op for op in _OBJECT_OPS if op in measured]


def _dispatch_targets(dispatch: Mapping[str, Any]) -> list[Target]:
    found = []
    for executor, wanted in (("thread", THREAD_P50_MS), ("celery", CELERY_P50_MS)):
        measured = dispatch.get(executor)
        if not measured:
            continue
        name = f"dispatch create -> processing p50, {executor}"
        if "skipped" in measured:
            found.append(Target(name, f"< {wanted:.0f} ms", f"skipped: {measured['skipped']}",
                                None))
            continue
        p50 = measured["idle"]["p50_ms"]
        found.append(Target(name, f"< {wanted:.0f} ms", f"{p50:.1f} ms", p50 < wanted))
    celery = dispatch.get("celery") or {}
    if "ratio_to_bare_celery" in celery:
        bare = celery["bare_celery"]
        found.append(Target("celery executor tasks/s vs bare Celery (defaults)",
                            f">= {BARE_CELERY_RATIO:.0%}",
                            f"{celery['ratio_to_bare_celery']:.0%} ({celery['burst']['per_s']:.0f}"
                            f" of {bare['defaults_per_s']:.0f}/s; bare with glint's delivery "
                            f"settings {bare['glint_delivery_per_s']:.0f}/s)",
                            celery["ratio_to_bare_celery"] >= BARE_CELERY_RATIO))
    thread = dispatch.get("thread") or {}
    if "burst" in thread:
        per_s = thread["burst"]["per_s"]
        anchor = (f" ({thread['ratio_to_sqlite_loop']:.0%} of raw SQLite's "
                  f"{thread['sqlite_loop_per_s']:.0f}/s)" if "sqlite_loop_per_s" in thread else "")
        found.append(Target("thread executor burst tasks/s", f">= {THREAD_PER_S:.0f}",
                            f"{per_s:.0f}{anchor}", per_s >= THREAD_PER_S))
    return found


# -- the table ------------------------------------------------------------------------------


def _rows(header: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    cells = [[str(c) for c in header]] + [[_cell(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |"
             for r in cells]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return lines


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.2f}" if value < 10 else f"{value:.0f}"
    return str(value)


def table(results: Mapping[str, Any]) -> str:
    out: list[str] = []
    m = results["machine"]
    out.append(f"machine: {m['cpu']}, {m['nproc']} cores, {m['memory_gib']} GiB, data dir on "
               f"{m['data_dir_filesystem']}; load {m['load_average']} -> "
               f"{m.get('load_average_end')}")
    if "limits_mib_s" in results:
        rows = [[name, mib_s, 1000 / mib_s] for name, mib_s in sorted(results["limits_mib_s"].items())]
        out += ["", *_rows(["limit", "MiB/s", "ms/MiB"], rows)]
    moved = results.get("transfers")
    if moved:
        out += ["", f"idle server RSS {moved['idle_rss_mib']} MiB; image {moved['size_mib']} MiB"]
        out += _rows(["glint", "MiB/s", "s", "bound by", "limit MiB/s", "ratio", "peak RSS MiB",
                      "server CPU ms/MiB", "machine busy"],
                     [[n, t["mib_s"], t["seconds"], t["limit"], t["limit_mib_s"],
                       f"{t['ratio']:.0%}", t["peak_rss_mib"], t["server_cpu_ms_per_mib"],
                       f"{t['machine_busy']:.0%}"]
                      for n, t in ((n, moved[n]) for n in TRANSFERS if n in moved)])
    out += _concurrent_table(results.get("concurrent") or {})
    out += _object_table(results.get("objects") or {})
    out += _cache_table(results.get("cache") or {})
    out += _dispatch_table(results.get("dispatch") or {})
    api = results.get("api")
    for run in (api or {}).get("runs", [api] if api else []):
        if "skipped" in run:
            out += ["", f"API latency, database {run['database']}: skipped ({run['skipped']})"]
            continue
        out += ["", f"API latency in ms (c=1: one client; c={run['concurrency']}: "
                    f"{run['concurrency']} clients), database {run['database']}"]
        rows = []
        for level in run["levels"]:
            for key, label in (("get", "GET /v2/tasks/{id}"), ("list", "GET /v2/tasks?limit=25")):
                one, many = level[f"{key}_one"], level[key]
                rows.append([level["tasks"], level.get("workers", 1), label, one["p50_ms"],
                             one["p99_ms"], many["p50_ms"], many["p99_ms"], many["per_s"]])
        out += _rows(["tasks", "workers", "request", "c=1 p50", "c=1 p99", "p50", "p99",
                      "req/s"], rows)
    out += _keystone_table(results.get("keystone"))
    out += ["", *_rows(["target", "wanted", "measured", "met"],
                       [[t.name, t.wanted, t.measured,
                         {True: "met", False: "NOT met", None: "-"}[t.met]]
                        for t in targets(results)])]
    return "\n".join(out)


def _dispatch_table(dispatch: Mapping[str, Any]) -> list[str]:
    if not dispatch:
        return []
    rows = []
    for executor, d in dispatch.items():
        if "skipped" in d:
            rows.append([executor, "skipped", "", "", "", "", ""])
            continue
        rows.append([executor, d["idle"]["p50_ms"], d["idle"]["p99_ms"], d["burst"]["p50_ms"],
                     d["burst"]["p99_ms"], d["burst"]["per_s"], d["burst_create_per_s"]])
        if "sqlite_loop_per_s" in d:  # the anchor: tasks/s only
            rows.append(["raw SQLite, a task's 3 transactions", "", "", "", "",
                         d["sqlite_loop_per_s"], ""])
        bare = d.get("bare_celery")
        if bare:  # the anchor: tasks/s only (no database to read latencies from)
            rows += [["bare Celery, defaults", "", "", "", "", bare["defaults_per_s"], ""],
                     ["bare Celery, glint's delivery", "", "", "", "",
                      bare["glint_delivery_per_s"], ""]]
    return ["", "dispatch, create -> processing in ms (idle: one at a time; burst: "
            "many clients at once)",
            *_rows(["executor", "idle p50", "idle p99", "burst p50", "burst p99", "tasks/s",
                    "creates/s"], rows)]


def _keystone_table(found: Mapping[str, Any] | None) -> list[str]:
    if not found:
        return []
    if "skipped" in found:
        return ["", f"keystone mode: skipped: {found['skipped']}"]
    rows = [[name, f["p50_ms"], f["p99_ms"], f"{f['p50_ratio']}x", f"{f['p99_ratio']}x",
             f["count"], " ".join(f"{k}:{v}" for k, v in f["flood_answers"].items())
             + (" (timed out)" if f["timed_out"] else "")]
            for name, f in found.items() if isinstance(f, dict)]
    return ["", f"keystone mode: {found['request']} with a cached token, in ms, alone and "
                f"while {found['clients']} clients send bad tokens",
            *_rows(["flood", "p50", "p99", "p50 vs idle", "p99 vs idle", "requests",
                    "flood answers"], rows)]
