"""Converting disk images with ``qemu-img convert`` (Debian's ``qemu-utils``).

glint names formats as Glance does (``disk_format``); qemu-img has its own names for a few
(``vhd`` is qemu's ``vpc``; ISO and Amazon images are read as ``raw``). The source format is
always given explicitly (``-f``): qemu-img never guesses it from the bytes.

Before qemu-img reads a source that is not raw, oslo.utils' format inspector checks that the
bytes are in the declared format and are safe to open: a qcow2 with a backing file or an
external data file, or a VMDK with extents in other files, would make qemu-img read files of
the host, so they are refused.
"""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys
from collections.abc import Callable, Iterable
from typing import Any

from oslo_utils.imageutils import format_inspector

from glint import errors

COMMAND = "qemu-img"
# glint disk format -> qemu-img format, for formats qemu-img can write.
OUTPUT_FORMATS = {"raw": "raw", "qcow2": "qcow2", "vmdk": "vmdk", "vhdx": "vhdx", "vdi": "vdi",
                  "vhd": "vpc"}
# ... and for formats it can read: the above, plus formats that are raw bytes underneath.
INPUT_FORMATS = {**OUTPUT_FORMATS, "iso": "raw", "ami": "raw", "aki": "raw", "ari": "raw"}
_POLL = 0.2  # seconds between checks of should_cancel while qemu-img runs
# Glance's QEMU_IMG_PROC_LIMITS (CVE-2015-5162): a crafted image must not make ``qemu-img info``
# spin or balloon. The limits are set in a Python shim that then execs qemu-img, rather than in
# a preexec_fn, which may deadlock the child of a process that runs threads.
INFO_CPU_SECONDS = 2
INFO_ADDRESS_SPACE = 1024**3
_LIMITED_EXEC = (
    "import os, resource, sys\n"
    "cpu, memory = int(sys.argv[1]), int(sys.argv[2])\n"
    "resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))\n"
    "resource.setrlimit(resource.RLIMIT_AS, (memory, memory))\n"
    "os.execvp(sys.argv[3], sys.argv[3:])\n")


def check_source(path: pathlib.Path, disk_format: str) -> None:
    """Refuse (ScriptError) a source qemu-img should not open as ``disk_format``."""
    qemu_format = _input_format(disk_format)
    if qemu_format == "raw":
        return  # read as plain bytes: nothing in them can point qemu-img elsewhere
    inspector_cls = format_inspector.get_inspector(disk_format)
    if inspector_cls is None:  # pragma: no cover - every INPUT_FORMATS entry has one
        raise errors.ScriptError(f"cannot inspect {disk_format} data before converting it")
    try:
        inspector_cls.from_file(str(path)).safety_check()
    except format_inspector.ImageFormatError as exc:
        raise errors.ScriptError(f"the image's data is not valid {disk_format} data, as its "
                                 f"disk_format says: {exc}") from exc
    except format_inspector.SafetyCheckFailed as exc:
        raise errors.ScriptError(f"the image's {disk_format} data is unsafe to convert "
                                 f"({', '.join(sorted(exc.failures))})") from exc


def info(path: pathlib.Path, disk_format: str,
         vmdk_allowed_types: Iterable[str] = ("streamOptimized", "monolithicSparse"),
         ) -> dict[str, Any]:
    """``qemu-img info`` of ``path`` read as ``disk_format``, under CPU and memory limits.

    Refuses (ScriptError) what qemu-img reports as another format, with a backing file or an
    external data file, or (VMDK) with a create-type not in ``vmdk_allowed_types``.
    """
    qemu_format = _input_format(disk_format)
    command = [sys.executable, "-c", _LIMITED_EXEC, str(INFO_CPU_SECONDS),
               str(INFO_ADDRESS_SPACE), COMMAND, "info", "-f", qemu_format, "--output=json",
               str(path)]
    try:
        done = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True,
                              timeout=30, check=False)
    except subprocess.TimeoutExpired:
        raise errors.ScriptError(f"{COMMAND} info did not finish reading the image") from None
    if done.returncode != 0:
        raise errors.ScriptError(f"{COMMAND} info could not read the image as {disk_format}: "
                                 f"{_reason(done.stderr, done.returncode)}")
    report: dict[str, Any] = json.loads(done.stdout)
    _check_info(report, qemu_format, disk_format, vmdk_allowed_types)
    return report


def _check_info(report: dict[str, Any], qemu_format: str, disk_format: str,
                vmdk_allowed_types: Iterable[str]) -> None:
    if report.get("format") != qemu_format:
        raise errors.ScriptError(f"Image data refused: {COMMAND} reads it as "
                                 f"{report.get('format')}, not {disk_format}")
    if report.get("backing-filename") or report.get("full-backing-filename"):
        raise errors.ScriptError("Image data refused: it has a backing file")
    specific = report.get("format-specific", {}).get("data", {})
    if specific.get("data-file"):
        raise errors.ScriptError("Image data refused: it has an external data file")
    create_type = specific.get("create-type")
    if qemu_format == "vmdk" and create_type not in set(vmdk_allowed_types):
        raise errors.ScriptError(f"Image data refused: VMDK create-type {create_type!r} is not "
                                 f"in vmdk_allowed_types ({', '.join(vmdk_allowed_types)})")


def _reason(stderr: bytes, returncode: int) -> str:
    text = stderr.decode(errors="replace").strip()
    if returncode < 0 or not text:
        return f"killed by signal {-returncode}" if returncode < 0 else f"exit {returncode}"
    return text.splitlines()[-1]


def convert(source: pathlib.Path, source_format: str, target: pathlib.Path, target_format: str,
            should_cancel: Callable[[], bool] = lambda: False) -> None:
    """Convert ``source`` to ``target``; ScriptError with qemu-img's reason if it fails."""
    command = [COMMAND, "convert", "-q", "-f", _input_format(source_format),
               "-O", output_format(target_format), str(source), str(target)]
    try:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.PIPE)
    except FileNotFoundError:
        raise errors.ScriptError(f"{COMMAND} is not installed (Debian package qemu-utils); "
                                 "it is needed to convert image formats") from None
    try:
        _wait(process, should_cancel)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        stderr = process.stderr.read().decode(errors="replace") if process.stderr else ""
        if process.stderr:
            process.stderr.close()
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
