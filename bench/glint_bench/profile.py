"""Sampling profiles of ``glint serve`` during a transfer, with py-spy (``BENCH_PROFILE=1``).

py-spy (``pip install py-spy``) samples every thread of the process from outside, without
slowing it much. The raw collapsed stacks are kept under ``bench/results/``; the summary lists
where the busy threads spend their samples: by leaf function (self) and by function anywhere
on the stack (inclusive), as percentages of all samples, so 100% is one busy core.
"""

from __future__ import annotations

import collections
import contextlib
import pathlib
import re
import shutil
import signal
import sys
import time
from collections.abc import Iterator
from typing import Any

from glint_bench import procs

RATE = 200  # samples per second
_LOCATION = re.compile(r"\s*\(([^()]*?):\d+\)$")  # "(path/file.py:123)" ending a frame


def py_spy() -> str | None:
    return shutil.which("py-spy", path=str(procs.BIN)) or shutil.which("py-spy")


@contextlib.contextmanager
def record(processes: procs.Processes, pid: int, out: pathlib.Path,
           log: pathlib.Path) -> Iterator[dict[str, Any]]:
    """Record ``pid`` during the block; the dict it yields gets the summary at the end.

    Without py-spy the dict stays empty and a note says so.
    """
    summary: dict[str, Any] = {}
    binary = py_spy()
    if binary is None:
        print("  (py-spy is not installed, no profile: pip install py-spy)", file=sys.stderr)
        yield summary
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    spy = processes.start([binary, "record", "--pid", str(pid), "--rate", str(RATE),
                           "--format", "raw", "--threads", "--nonblocking", "--output", str(out)],
                          {}, log, stop_signal=signal.SIGINT)
    start = time.perf_counter()
    try:
        yield summary
    finally:
        seconds = time.perf_counter() - start
        processes.stop(spy)
    summary.update(summarise(out, seconds), raw=str(out))


def _frame(frame: str) -> str:
    match = _LOCATION.search(frame)
    if match is None:
        return frame.strip()
    name = frame[:match.start()].strip()
    return f"{name} ({pathlib.Path(match.group(1)).name})"


def summarise(path: pathlib.Path, seconds: float,
              top: int = 12) -> dict[str, list[tuple[str, float]]]:
    """Percent of one core (of ``seconds`` of sampling) per leaf function, per function on the
    stack, and per thread. Idle threads (blocked in a system call) are not sampled."""
    own: collections.Counter[str] = collections.Counter()
    anywhere: collections.Counter[str] = collections.Counter()
    threads: collections.Counter[str] = collections.Counter()
    total = 0
    if not path.exists() or seconds <= 0:
        return {}
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        thread, frames = frames[0], [_frame(f) for f in frames[1:]]
        total += count
        threads[thread.strip()] += count
        if frames:
            own[frames[-1]] += count
        for name in set(frames):
            anywhere[name] += count
    if not total:
        return {}
    ticks = seconds * RATE

    def pct(counter: collections.Counter[str]) -> list[tuple[str, float]]:
        return [(name, round(100 * n / ticks, 1)) for name, n in counter.most_common(top)]

    return {"self": pct(own), "inclusive": pct(anywhere), "threads": pct(threads)}


def thread_names(summary: dict[str, Any]) -> dict[str, str]:
    """Thread id → Python thread name, from a summary's ``threads`` (py-spy names them)."""
    names = {}
    for label, _pct in summary.get("threads", []):
        match = re.match(r"thread \((\d+)\): (.+)", label)
        if match:
            names[match.group(1)] = match.group(2)
    return names
