"""Short headers: glint's reading of what qemu would take bytes for is qemu's own.

oslo.utils' inspector needs whole headers; qemu probes the first 2 KiB, zero-padded. For every
file of the corpus, and for each short case cut at several lengths, :func:`qemu_probe.probe`
finds a format exactly when ``qemu-img info`` (left to probe) does not read the file as raw.
"""

from __future__ import annotations

import json
import pathlib
import subprocess

from glint import qemu_probe
from tests.unit.security import corpus


def _qemu_reads_raw(path: pathlib.Path) -> bool:
    done = subprocess.run(["qemu-img", "info", "--output=json", str(path)], capture_output=True,
                          check=False)
    # A file qemu-img cannot open was probed as a format (raw opens anything).
    return done.returncode == 0 and json.loads(done.stdout)["format"] == "raw"


def test_the_probe_agrees_with_qemu_img(cases: list[corpus.Case],
                                        tmp_path: pathlib.Path) -> None:
    samples = {case.name: case.data for case in cases}
    for case in corpus.by_kind(cases, "short"):
        for length in (4, 8, 64, 511):
            samples[f"{case.name}[:{length}]"] = case.data[:length]
    disagree = {}
    for name, data in samples.items():
        path = tmp_path / "sample"
        path.write_bytes(data)
        ours, qemus = not qemu_probe.probe(data), _qemu_reads_raw(path)
        if ours != qemus:
            disagree[name] = {"glint reads raw": ours, "qemu-img reads raw": qemus}
    assert disagree == {}


def test_every_short_case_is_a_format_to_qemu(cases: list[corpus.Case],
                                              tmp_path: pathlib.Path) -> None:
    # The class is real: qemu-img would not read any of these as raw.
    raw = []
    for case in corpus.by_kind(cases, "short"):
        path = tmp_path / case.name
        path.write_bytes(case.data)
        if _qemu_reads_raw(path):
            raw.append(case.name)
    assert raw == []
