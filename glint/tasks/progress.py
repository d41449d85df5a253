"""A running task's progress: what its script reports through ``ctx.report_progress``.

Each report is written twice: as data in the task's ``progress`` field (``done``, ``total``,
``percent``; declared in ``/v2/schemas/task``), and in words in its ``message``, which is all
a Glance client shows. Writes are rate-limited and go through the run's lease, renewing it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

INTERVAL = 1.0  # seconds between progress writes
MiB = 1024 * 1024

Write = Callable[[str, dict[str, Any]], object]


def of(done: int, total: int | None) -> dict[str, Any]:
    """The task's ``progress`` field: ``percent`` (0-100, one decimal) when ``total`` is known."""
    percent = None
    if total is not None:
        percent = 100.0 if total <= 0 else round(min(100.0, 100.0 * done / total), 1)
    return {"done": done, "total": total, "percent": percent}


def describe(done: int, total: int | None) -> str:
    """The default ``message``: bytes copied, of how many, and the share when known."""
    if total is None:
        return f"Copied {done // MiB} MiB"
    return f"Copied {done // MiB} MiB of {total // MiB} MiB ({of(done, total)['percent']:g}%)"


class Reporter:
    """``ctx.report_progress``: writes ``progress`` and ``message``, at most once an INTERVAL,
    and the report that reaches ``total`` whenever it comes."""

    def __init__(self, write: Write, clock: Callable[[], float] = time.monotonic) -> None:
        self._write = write
        self._clock = clock
        self._last = float("-inf")

    def __call__(self, done: int, total: int | None = None, message: str | None = None) -> None:
        now = self._clock()
        finished = total is not None and done >= total  # always written: the bar reaches 100%
        if now - self._last < INTERVAL and not finished:
            return
        self._last = now
        self._write(message if message is not None else describe(done, total), of(done, total))
