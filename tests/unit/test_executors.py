"""One contract suite for every executor."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from glint import plugins
from glint.executors.inline import InlineExecutor
from glint.executors.thread import ThreadExecutor


@pytest.mark.parametrize("name", ["inline", "thread"])
def test_every_executor_runs_what_it_is_given(name: str) -> None:
    ran: list[str] = []
    done = threading.Event()

    def run(task_id: str) -> None:
        ran.append(task_id)
        if len(ran) == 3:
            done.set()

    executor = plugins.load("glint.executors", name)(run, threads=2)
    for task_id in ("a", "b", "c"):
        executor.submit(task_id)
    assert done.wait(5)
    executor.shutdown(wait=True)
    assert sorted(ran) == ["a", "b", "c"]


@pytest.mark.parametrize("cls", [InlineExecutor, ThreadExecutor])
def test_nothing_runs_after_shutdown(cls: Callable[..., object]) -> None:
    ran: list[str] = []
    executor = cls(ran.append)
    executor.shutdown()  # type: ignore[attr-defined]
    executor.submit("late")  # type: ignore[attr-defined]
    assert ran == []


def test_thread_pool_is_bounded_and_shutdown_waits_for_running_tasks() -> None:
    release = threading.Event()
    started = threading.Semaphore(0)
    running = 0
    peak = 0
    lock = threading.Lock()
    finished: list[str] = []

    def run(task_id: str) -> None:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        started.release()
        release.wait(5)
        with lock:
            running -= 1
        finished.append(task_id)

    executor = ThreadExecutor(run, threads=2)
    for i in range(5):
        executor.submit(str(i))
    assert started.acquire(timeout=5) and started.acquire(timeout=5)
    threading.Timer(0.2, release.set).start()
    executor.shutdown(wait=True, timeout=5)
    assert peak == 2
    assert sorted(finished) == ["0", "1"]  # queued ones stay pending for the next start


def test_thread_executor_survives_a_runner_that_raises() -> None:
    done = threading.Event()

    def run(task_id: str) -> None:
        if task_id == "bad":
            raise RuntimeError("runner bug")
        done.set()

    executor = ThreadExecutor(run, threads=1)
    executor.submit("bad")
    executor.submit("good")
    assert done.wait(5)
    executor.shutdown()


def test_unknown_executor_name_is_a_clear_configuration_error() -> None:
    from glint import errors

    with pytest.raises(errors.ConfigurationError, match="no executor named 'nope'"):
        plugins.load("glint.executors", "nope")
