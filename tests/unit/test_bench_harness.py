"""The benchmark harness's arithmetic (bench/glint_bench/stats.py), loaded from its file.

The harness itself runs only in `make bench`; its pure pieces are checked here.
"""

from __future__ import annotations

import importlib.util
import pathlib
import sys
import types

import pytest

STATS = pathlib.Path(__file__).parents[2] / "bench" / "glint_bench" / "stats.py"


def _load() -> types.ModuleType:
    spec = importlib.util.spec_from_file_location("glint_bench_stats", STATS)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while building
    spec.loader.exec_module(module)
    return module


stats = _load()


def test_percentile_interpolates_between_closest_ranks() -> None:
    samples = [4.0, 1.0, 3.0, 2.0]  # unsorted on purpose
    assert stats.percentile(samples, 0) == 1.0
    assert stats.percentile(samples, 100) == 4.0
    assert stats.percentile(samples, 50) == pytest.approx(2.5)
    assert stats.percentile(samples, 99) == pytest.approx(3.97)


def test_percentile_of_one_sample_is_that_sample() -> None:
    assert stats.percentile([7.0], 50) == stats.percentile([7.0], 99) == 7.0


@pytest.mark.parametrize("samples, pct", [([], 50), ([1.0], -1), ([1.0], 101)])
def test_percentile_refuses_nonsense(samples: list[float], pct: float) -> None:
    with pytest.raises(ValueError):
        stats.percentile(samples, pct)


def test_p99_of_a_hundred_samples_sits_near_the_top() -> None:
    samples = [float(i) for i in range(1, 101)]
    assert stats.percentile(samples, 99) == pytest.approx(99.01)


def test_the_slowest_of_the_named_limits_bounds_an_operation() -> None:
    limits = {"md5+sha512": 320.0, "disk_write_fsync": 150.0, "http_loopback": 3000.0,
              "http_loopback_image": 90.0}
    bound = stats.bounding(limits, ["md5+sha512", "disk_write_fsync", "http_loopback"])
    assert (bound.limit, bound.mib_s) == ("disk_write_fsync", 150.0)
    assert bound.ratio(135.0) == pytest.approx(0.9)


def test_a_limit_not_measured_is_an_error_not_a_silent_pass() -> None:
    with pytest.raises(KeyError):
        stats.bounding({"disk_write_fsync": 150.0}, ["disk_write_fsync", "http_loopback"])
    with pytest.raises(ValueError):
        stats.bounding({"disk_write_fsync": 150.0}, [])


def test_throughput_and_latency_summary() -> None:
    assert stats.mib_per_s(512 * stats.MiB, 2.0) == 256.0
    with pytest.raises(ValueError):
        stats.mib_per_s(1, 0)
    summary = stats.latency([0.001, 0.002, 0.003, 0.004], elapsed=2.0)
    assert summary.count == 4
    assert summary.p50_ms == pytest.approx(2.5)
    assert summary.per_s == 2.0
