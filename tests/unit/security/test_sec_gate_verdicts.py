"""The safety gate's verdict on every case of the corpus, whatever the chunking.

The classes (corpus.py): backing references, short headers, VMDK references must be refused;
the bomb is a valid qcow2 (refused only when converted: test_sec_conversion_bounds.py); safe
images pass with their virtual size. The verdict must be a function of the bytes alone: the
same for one piece, single bytes, 8 bytes then the rest (a source that pauses), odd sizes.
"""

from __future__ import annotations

import json
import pathlib
import random
import subprocess
from collections.abc import Iterable

import pytest

from glint import errors, gate, inspection, qemu_img
from tests.unit.security import corpus

CHUNKINGS = {
    "whole": lambda data: [data],
    "bytes": lambda data: _small_then_rest(data, 1, 4096),
    "8-then-rest": lambda data: [data[:8], data[8:]],
    "odd-7": lambda data: _small_then_rest(data, 7, 256 * 1024),
    "511": lambda data: [data[i:i + 511] for i in range(0, len(data), 511)],
    "random": lambda data: _random_cuts(data),
}


def _small_then_rest(data: bytes, size: int, upto: int) -> list[bytes]:
    """``size``-byte chunks for the first ``upto`` bytes, then the rest in one piece."""
    head = [data[i:min(i + size, upto)] for i in range(0, min(len(data), upto), size)]
    return head + ([data[upto:]] if len(data) > upto else [])


def _random_cuts(data: bytes) -> list[bytes]:
    rng = random.Random(len(data))
    cuts = sorted(rng.sample(range(1, len(data)), min(20, len(data) - 1))) if len(data) > 1 else []
    return [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]


def outcome(image_gate: gate.ImageGate, case: corpus.Case, chunks: Iterable[bytes],
            container_format: str = "bare") -> str:
    checked = image_gate.stream(chunks, case.disk_format, container_format)
    try:
        for _ in checked:
            pass
    except errors.ImageRefused as exc:
        return f"refused: {exc.message}"
    assert checked.verdict is not None
    return f"passed: virtual size {checked.verdict.virtual_size}"


@pytest.mark.parametrize("kind", ["backing", "short", "vmdk"])
def test_every_unsafe_case_is_refused(cases: list[corpus.Case], image_gate: gate.ImageGate,
                                      kind: str) -> None:
    wrong = {case.name: result for case in corpus.by_kind(cases, kind)
             if not (result := outcome(image_gate, case, [case.data])).startswith("refused")}
    assert wrong == {}


def test_safe_images_pass_with_their_virtual_size(cases: list[corpus.Case],
                                                  image_gate: gate.ImageGate,
                                                  tmp_path: pathlib.Path) -> None:
    # The virtual size is qemu-img's (a VHD's is its geometry's, a little more than 1 MiB).
    results = {case.name: outcome(image_gate, case, [case.data])
               for case in corpus.by_kind(cases, "safe", "bomb")}
    expected = {case.name: f"passed: virtual size {_qemu_virtual_size(tmp_path, case)}"
                for case in corpus.by_kind(cases, "safe", "bomb")}
    assert results == expected


def _qemu_virtual_size(directory: pathlib.Path, case: corpus.Case) -> int:
    path = directory / case.name
    path.write_bytes(case.data)
    qemu_format = qemu_img.INPUT_FORMATS[case.disk_format]
    report = subprocess.run(["qemu-img", "info", "-f", qemu_format, "--output=json", str(path)],
                            check=True, capture_output=True).stdout
    return int(json.loads(report)["virtual-size"])


@pytest.mark.parametrize("chunking", sorted(CHUNKINGS))
def test_the_verdict_does_not_depend_on_the_chunking(cases: list[corpus.Case],
                                                     image_gate: gate.ImageGate,
                                                     chunking: str) -> None:
    cut = CHUNKINGS[chunking]
    differs = {}
    for case in cases:
        whole, chunked = outcome(image_gate, case, [case.data]), outcome(image_gate, case,
                                                                         cut(case.data))
        if whole != chunked:
            differs[case.name] = (whole, chunked)
    assert differs == {}


def test_opaque_containers_still_refuse_unsafe_disks(cases: list[corpus.Case],
                                                     image_gate: gate.ImageGate) -> None:
    # An ovf/ova may hold anything, but bytes that are themselves an unsafe disk image are not
    # let in under another label (a VMDK descriptor declared raw included).
    unsafe = corpus.by_kind(cases, "backing", "vmdk")
    passed = [case.name for case in unsafe
              if outcome(image_gate, case, [case.data], "ovf").startswith("passed")]
    assert passed == []


def _reused_buffer(data: bytes, size: int) -> Iterable[bytes]:
    """``data`` in ``size`` views of one buffer, scribbled over once the gate has seen each: as
    an import's reader reuses its buffers (glint.buffers). A gate that kept a view would judge
    the scribbles."""
    buffer = bytearray(size)
    for start in range(0, len(data), size):
        piece = data[start:start + size]
        buffer[:len(piece)] = piece
        yield memoryview(buffer)[:len(piece)]  # type: ignore[misc]
        buffer[:] = b"QFI\xfb" * (size // 4)


def test_the_gate_keeps_no_view_of_a_reused_buffer(cases: list[corpus.Case],
                                                   image_gate: gate.ImageGate,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    # Blocks of 4 KiB, so that the corpus's small files reach the inspectors as views too.
    monkeypatch.setattr(inspection, "BLOCK_SIZE", 4096)
    differs = {}
    for case in cases:
        fresh = outcome(image_gate, case, [case.data[i:i + 4096]
                                           for i in range(0, len(case.data), 4096)])
        reused = outcome(image_gate, case, _reused_buffer(case.data, 4096))
        if fresh != reused:
            differs[case.name] = (fresh, reused)
    assert differs == {}
