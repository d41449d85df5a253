"""Running ``qemu-img`` (Debian's ``qemu-utils``): ``info`` to check a file, ``convert``.

Only :mod:`glint.gate` calls this module: it inspects a file before qemu-img sees it. Each call
here still narrows what qemu-img can do on its own:

- The source format is always given (``-f``, or the driver of a ``json:`` spec): qemu-img never
  guesses it from the bytes.
- ``info`` runs under CPU, memory and wall-clock limits (Glance's ``QEMU_IMG_PROC_LIMITS``,
  CVE-2015-5162) and its report is checked: the format it read, no backing file, no external
  data file, no VMDK extent in another file, an allowed VMDK create-type.
- ``convert`` opens the source with ``"backing": null`` where the format has backing files, so
  no backing file is opened whatever the header says, and runs with ``RLIMIT_FSIZE`` at the
  output bound: a crafted image cannot write more than that, whatever its virtual size.

glint names formats as Glance does (``disk_format``); qemu-img has its own names for a few
(``vhd`` is qemu's ``vpc``; ISO and Amazon images are read as ``raw``).
"""

from __future__ import annotations

import json
import pathlib
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterable
from typing import Any

from glint import errors

COMMAND = "qemu-img"
# glint disk format -> qemu-img format, for formats qemu-img can write.
OUTPUT_FORMATS = {"raw": "raw", "qcow2": "qcow2", "vmdk": "vmdk", "vhdx": "vhdx", "vdi": "vdi",
                  "vhd": "vpc"}
# ... and for formats it can read: the above, plus formats that are raw bytes underneath.
INPUT_FORMATS = {**OUTPUT_FORMATS, "iso": "raw", "ami": "raw", "aki": "raw", "ari": "raw"}
_WITH_BACKING = frozenset({"qcow2", "vmdk"})  # qemu formats that take a "backing" option
_POLL = 0.2  # seconds between checks of should_cancel while qemu-img runs
INFO_CPU_SECONDS = 2
INFO_ADDRESS_SPACE = 1024**3
INFO_TIMEOUT = 30
# The limits are set in a Python shim that then execs qemu-img, rather than in a preexec_fn,
# which may deadlock the child of a process that runs threads. -1 leaves a limit unset.
_LIMITED_EXEC = (
    "import os, resource, sys\n"
    "for name, value in zip(('RLIMIT_CPU', 'RLIMIT_AS', 'RLIMIT_FSIZE'), sys.argv[1:4]):\n"
    "    if int(value) >= 0:\n"
    "        resource.setrlimit(getattr(resource, name), (int(value), int(value)))\n"
    "os.execvp(sys.argv[4], sys.argv[4:])\n")


def _limited(command: list[str], *, cpu: int = -1, memory: int = -1,
             file_size: int = -1) -> list[str]:
    if shutil.which(COMMAND) is None:
        raise errors.ScriptError(f"{COMMAND} is not installed (Debian package qemu-utils); "
                                 "it is needed to convert image formats")
    return [sys.executable, "-c", _LIMITED_EXEC, str(cpu), str(memory), str(file_size),
            *command]


def info(path: pathlib.Path, disk_format: str,
         vmdk_allowed_types: Iterable[str] = ("streamOptimized", "monolithicSparse"),
         ) -> dict[str, Any]:
    """``qemu-img info`` of ``path`` read as ``disk_format``, under CPU and memory limits.

    Refuses (ScriptError) what qemu-img reports as another format, with a backing file, an
    external data file, an extent in another file or (VMDK) a create-type not in
    ``vmdk_allowed_types``.
    """
    qemu_format = _input_format(disk_format)
    command = _limited([COMMAND, "info", "-f", qemu_format, "--output=json", str(path)],
                       cpu=INFO_CPU_SECONDS, memory=INFO_ADDRESS_SPACE)
    try:
        done = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True,
                              timeout=INFO_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        raise errors.ScriptError(f"{COMMAND} info did not finish reading the image") from None
    if done.returncode != 0:
        raise errors.ScriptError(f"{COMMAND} info could not read the image as {disk_format}: "
                                 f"{_reason(done.stderr, done.returncode)}")
    report: dict[str, Any] = json.loads(done.stdout)
    _check_info(report, path, qemu_format, disk_format, vmdk_allowed_types)
    return report


def _check_info(report: dict[str, Any], path: pathlib.Path, qemu_format: str, disk_format: str,
                vmdk_allowed_types: Iterable[str]) -> None:
    if report.get("format") != qemu_format:
        raise errors.ScriptError(f"Image data refused: {COMMAND} reads it as "
                                 f"{report.get('format')}, not {disk_format}")
    if report.get("backing-filename") or report.get("full-backing-filename"):
        raise errors.ScriptError("Image data refused: it has a backing file")
    specific = report.get("format-specific", {}).get("data", {})
    if specific.get("data-file"):
        raise errors.ScriptError("Image data refused: it has an external data file")
    for extent in specific.get("extents", []):
        if pathlib.Path(str(extent.get("filename", ""))) != path:
            raise errors.ScriptError("Image data refused: it has an extent in another file")
    create_type = specific.get("create-type")
    if qemu_format == "vmdk" and create_type not in set(vmdk_allowed_types):
        raise errors.ScriptError(f"Image data refused: VMDK create-type {create_type!r} is not "
                                 f"in vmdk_allowed_types ({', '.join(vmdk_allowed_types)})")


def _reason(stderr: bytes, returncode: int) -> str:
    text = stderr.decode(errors="replace").strip()
    if returncode < 0 or not text:
        return f"killed by signal {-returncode}" if returncode < 0 else f"exit {returncode}"
    return text.splitlines()[-1]


def source_spec(path: pathlib.Path, disk_format: str) -> str:
    """A ``json:`` filename that opens ``path`` as ``disk_format`` and never a backing file."""
    qemu_format = _input_format(disk_format)
    spec: dict[str, Any] = {"driver": qemu_format,
                            "file": {"driver": "file", "filename": str(path)}}
    if qemu_format in _WITH_BACKING:
        spec["backing"] = None
    return "json:" + json.dumps(spec)


def convert(source: pathlib.Path, source_format: str, target: pathlib.Path, target_format: str,
            *, max_size: int, should_cancel: Callable[[], bool] = lambda: False) -> None:
    """Convert ``source`` to ``target``, writing at most ``max_size`` bytes.

    ScriptError with qemu-img's reason if it fails, or saying the output passed ``max_size``.
    """
    command = _limited([COMMAND, "convert", "-q", source_spec(source, source_format),
                        "-O", output_format(target_format), str(target)], file_size=max_size)
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
    try:
        _wait(process, should_cancel)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        stderr = process.stderr.read().decode(errors="replace") if process.stderr else ""
        if process.stderr:
            process.stderr.close()
    if process.returncode == -signal.SIGXFSZ or "File too large" in stderr:
        raise errors.ScriptError(f"Image refused: converted to {target_format} it would be "
                                 f"more than {max_size} bytes")
    if process.returncode != 0:
        reason = stderr.strip().splitlines()[-1] if stderr.strip() else f"exit {process.returncode}"
        raise errors.ScriptError(f"{COMMAND} could not convert {source_format} to "
                                 f"{target_format}: {reason}")


def output_format(disk_format: str) -> str:
    try:
        return OUTPUT_FORMATS[disk_format]
    except KeyError:
        raise errors.BadRequest(f"cannot convert to {disk_format!r}: glint converts to "
                                f"{', '.join(sorted(OUTPUT_FORMATS))}") from None


def _input_format(disk_format: str) -> str:
    try:
        return INPUT_FORMATS[disk_format]
    except KeyError:
        raise errors.ScriptError(f"cannot convert {disk_format} images: glint converts from "
                                 f"{', '.join(sorted(INPUT_FORMATS))}") from None


def _wait(process: subprocess.Popen[bytes], should_cancel: Callable[[], bool]) -> None:
    # stderr is small (qemu-img -q prints only errors), so the pipe cannot fill up and block it.
    while True:
        try:
            process.wait(timeout=_POLL)
            return
        except subprocess.TimeoutExpired:
            if should_cancel():
                raise errors.ScriptError(f"{COMMAND} stopped: glint is stopping") from None
