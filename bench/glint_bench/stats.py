"""The harness's arithmetic: percentiles, throughput, and which limit bounds an operation.

Pure functions with no imports from glint or the rest of the harness, so the unit tests load
this file on its own (``tests/unit/test_bench_harness.py``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence

MiB = 1024 * 1024


def percentile(samples: Sequence[float], pct: float) -> float:
    """The ``pct``-th percentile (0-100) with linear interpolation between closest ranks.

    The same definition as numpy's default (``method="linear"``). Raises ValueError when
    there are no samples or ``pct`` is out of range.
    """
    if not samples:
        raise ValueError("percentile of no samples")
    if not 0 <= pct <= 100:
        raise ValueError(f"percentile {pct} is not within 0-100")
    ordered = sorted(samples)
    rank = (len(ordered) - 1) * pct / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def mib_per_s(nbytes: int, seconds: float) -> float:
    if seconds <= 0:
        raise ValueError("a duration must be positive")
    return nbytes / MiB / seconds


@dataclasses.dataclass(frozen=True)
class Bound:
    """What bounds an operation: the slowest of the limits it goes through."""

    limit: str
    mib_s: float

    def ratio(self, measured_mib_s: float) -> float:
        return measured_mib_s / self.mib_s


def bounding(limits: Mapping[str, float], names: Sequence[str]) -> Bound:
    """The lowest of ``limits[name]`` for ``names`` (KeyError names a limit not measured)."""
    if not names:
        raise ValueError("an operation goes through at least one limit")
    slowest = min(names, key=lambda name: limits[name])
    return Bound(slowest, limits[slowest])


@dataclasses.dataclass(frozen=True)
class Latency:
    """Latency percentiles in milliseconds, and the rate they were measured at."""

    count: int
    p50_ms: float
    p99_ms: float
    per_s: float


def latency(seconds: Sequence[float], elapsed: float) -> Latency:
    """Summarise per-request durations (seconds) measured over ``elapsed`` seconds of wall time."""
    millis = [s * 1000 for s in seconds]
    return Latency(count=len(millis), p50_ms=percentile(millis, 50),
                   p99_ms=percentile(millis, 99), per_s=len(millis) / elapsed)
