"""A description of the machine a run is on, for the record beside its figures."""

from __future__ import annotations

import os
import pathlib
import platform
import subprocess
from importlib import metadata


def _cpu_model() -> str:
    for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _mem_total_gib() -> float:
    for line in pathlib.Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) / 1024 / 1024
    return 0.0


def _filesystem(path: pathlib.Path) -> str:
    out = subprocess.run(["df", "-hT", str(path)], capture_output=True, text=True).stdout
    fields = out.splitlines()[-1].split() if out else []
    return f"{fields[0]} ({fields[1]}, {fields[2]})" if len(fields) > 2 else "unknown"


def describe(data_dir: pathlib.Path) -> dict[str, object]:
    return {
        "cpu": _cpu_model(),
        "nproc": os.cpu_count(),
        "memory_gib": round(_mem_total_gib(), 1),
        "data_dir_filesystem": _filesystem(data_dir),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "glint": metadata.version("glint"),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }
