"""The processes a run starts (glint serve, glint worker, the file server), and their memory.

Every process is started in its own session and registered with :class:`Processes`, whose
``close`` stops all of them (SIGTERM, then SIGKILL after a grace period), in reverse order.
The harness closes it in a ``finally``, so Ctrl-C or an error leaves nothing running.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import pathlib
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping

import httpx

BIN = pathlib.Path(sys.executable).parent
STOP_GRACE = 20.0


class Processes:
    def __init__(self) -> None:
        self._started: list[tuple[subprocess.Popen[bytes], int]] = []

    def start(self, argv: list[str], env: Mapping[str, str], log: pathlib.Path,
              stdout_pipe: bool = False, stop_signal: int = signal.SIGTERM) -> subprocess.Popen[bytes]:
        with log.open("ab") as out:
            process = subprocess.Popen(argv, env=dict(env), start_new_session=True,
                                       stdout=subprocess.PIPE if stdout_pipe else out,
                                       stderr=out)
        self._started.append((process, stop_signal))
        return process

    def stop(self, process: subprocess.Popen[bytes]) -> None:
        for entry in [e for e in self._started if e[0] is process]:
            self._started.remove(entry)
            _stop(*entry)

    def close(self) -> None:
        while self._started:
            _stop(*self._started.pop())


def _stop(process: subprocess.Popen[bytes], stop_signal: int) -> None:
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, stop_signal)  # its own session: the group is its own
        try:
            process.wait(STOP_GRACE)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    if process.stdout is not None:
        process.stdout.close()


@dataclasses.dataclass
class Glint:
    """A running ``glint serve``."""

    port: int
    process: subprocess.Popen[bytes]
    env: dict[str, str]
    log: pathlib.Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def glint_env(data_dir: pathlib.Path, **settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GLINT_")}
    env.update({"GLINT_DATA_DIR": str(data_dir), "GLINT_IMPORT_ALLOWED_HOSTS": '["127.0.0.1"]',
                "GLINT_NOTIFIER": "log"})
    env.update({f"GLINT_{k.upper()}": v for k, v in settings.items()})
    return env


def start_glint(procs: Processes, env: dict[str, str], port: int, log: pathlib.Path,
                workers: int = 1) -> Glint:
    """``glint db upgrade`` then ``glint serve`` (warning logs, no access log); wait for it."""
    subprocess.run([str(BIN / "glint"), "db", "upgrade"], env=env, check=True,
                   capture_output=True)
    process = procs.start([str(BIN / "glint"), "serve", "--host", "127.0.0.1", "--port",
                           str(port), "--workers", str(workers), "--log-level", "warning",
                           "--no-access-log"], env, log)
    glint = Glint(port, process, env, log)
    wait_http(f"{glint.url}/versions", process, log)
    return glint


def wait_http(url: str, process: subprocess.Popen[bytes], log: pathlib.Path,
              timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args!r} exited:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer in {timeout:g} s:\n{log.read_text()[-3000:]}")


# -- memory and CPU ------------------------------------------------------------------------

TICKS = os.sysconf("SC_CLK_TCK")


def _status_kib(pid: int, field: str) -> int:
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise LookupError(f"{field} missing from /proc/{pid}/status")


def _cpu_s(stat_path: str) -> tuple[str, float]:
    """(name, user + system seconds) from a /proc/.../stat file."""
    text = pathlib.Path(stat_path).read_text()
    name = text[text.index("(") + 1:text.rindex(")")]
    fields = text[text.rindex(")") + 2:].split()
    return name, (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


def _machine_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs since boot."""
    fields = [int(x) for x in pathlib.Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return sum(fields) - idle, sum(fields)


class Watch:
    """A process during a ``with`` block: peak RSS, CPU time (per thread too), machine load.

    The peak is the kernel's high-water mark (VmHWM), reset first by writing 5 to
    ``clear_refs`` so it covers this block only; a sampler (every 10 ms) backs it up where that
    is refused and records each thread's CPU time (threads that end between two samples lose
    their last 10 ms). ``machine_busy`` is the share of all cores busy meanwhile, whoever ran.
    """

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak_mib = 0.0
        self.cpu_s = 0.0
        self.machine_busy = 0.0
        self.threads: dict[str, float] = {}  # thread id → CPU seconds
        self._sampled = 0
        self._start_threads: dict[str, float] = {}
        self._last: dict[str, tuple[str, float]] = {}
        self._stop = threading.Event()

    def __enter__(self) -> Watch:
        try:
            pathlib.Path(f"/proc/{self.pid}/clear_refs").write_text("5")
            self._hwm = True
        except OSError:
            self._hwm = False
        self._sample_threads()
        self._start_threads = {tid: cpu for tid, (_, cpu) in self._last.items()}
        self._start_cpu = _cpu_s(f"/proc/{self.pid}/stat")[1]
        self._start_machine = _machine_ticks()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample_threads()
        hwm = _status_kib(self.pid, "VmHWM") if self._hwm else 0
        self.peak_mib = max(hwm, self._sampled) / 1024
        self.cpu_s = _cpu_s(f"/proc/{self.pid}/stat")[1] - self._start_cpu
        busy, total = (a - b for a, b in zip(_machine_ticks(), self._start_machine, strict=True))
        self.machine_busy = busy / total if total else 0.0
        for tid, (_name, cpu) in self._last.items():
            used = cpu - self._start_threads.get(tid, 0.0)
            if used > 0:
                self.threads[tid] = used

    def _sample(self) -> None:
        while not self._stop.wait(0.01):
            with contextlib.suppress(OSError, LookupError):
                self._sampled = max(self._sampled, _status_kib(self.pid, "VmRSS"))
            self._sample_threads()

    def _sample_threads(self) -> None:
        for task in pathlib.Path(f"/proc/{self.pid}/task").iterdir():
            with contextlib.suppress(OSError, ValueError):
                self._last[task.name] = _cpu_s(str(task / "stat"))


def rss_mib(pid: int) -> float:
    return _status_kib(pid, "VmRSS") / 1024
