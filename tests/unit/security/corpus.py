"""The adversarial corpus: image files built in the test run, each a case of one class of attack.

Each :class:`Case` is real bytes (made with ``qemu-img`` where qemu can make them, by hand where
the attack is a file qemu would never write) with the format a client would declare for them.
``build(directory)`` makes them all once per test session; the test modules beside this one
feed them to every path glint takes bytes in or out by. The classes:

- ``backing``: qcow2 headers that make qemu open other files (backing files by absolute,
  relative and ``json:`` names, external data files, unknown features, qcow version 1).
- ``short``: files shorter than the format inspector's headers that qemu still probes as a
  format (declared ``raw``): qcow2 with a backing name in 85 bytes, bare magics of every format
  qemu probes, a VMDK text descriptor.
- ``vmdk``: VMDKs that reach outside themselves: a parent (``parentFileNameHint``, also in a
  comment), flat and sparse extents in other files by text descriptor, a second extent.
- ``bomb``: a 384 KiB qcow2 whose clusters all map to one data cluster: 1 GiB virtual.
- ``safe``: images qemu-img makes in every format glint converts, which must pass.
"""

from __future__ import annotations

import dataclasses
import pathlib
import struct
import subprocess

CLUSTER = 64 * 1024
BOMB_VIRTUAL_SIZE = 1 << 30


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    kind: str  # the class: backing, short, vmdk, bomb, safe
    disk_format: str  # what a client declares
    data: bytes

    def __str__(self) -> str:
        return self.name


def qemu_img(*args: str) -> None:
    subprocess.run(["qemu-img", *args], check=True, capture_output=True)


def build(directory: pathlib.Path) -> list[Case]:
    """Every case, its files made in ``directory``."""
    return [*_backing(directory), *_short(), *_vmdk(directory), _bomb(), *_safe(directory)]


def by_kind(cases: list[Case], *kinds: str) -> list[Case]:
    return [case for case in cases if case.kind in kinds]


# -- backing references (qcow2) -----------------------------------------------------------


def _backing(directory: pathlib.Path) -> list[Case]:
    def made(name: str, *options: str) -> Case:
        path = directory / f"{name}.qcow2"
        qemu_img("create", "-q", "-f", "qcow2", *options, str(path), "1M")
        return Case(name, "backing", "qcow2", path.read_bytes())

    secret = directory / "host-secret"
    secret.write_bytes(b"host secret\n".ljust(4096, b"\0"))
    return [
        made("qcow2-backing-absolute", "-u", "-b", str(secret), "-F", "raw"),
        made("qcow2-backing-relative", "-u", "-b", "0b6f2a3e-other-project-image", "-F", "raw"),
        made("qcow2-backing-json", "-u", "-b",
             'json:{"driver": "raw", "file": {"driver": "file", "filename": "/etc/passwd"}}',
             "-F", "raw"),
        made("qcow2-v2-backing", "-u", "-o", "compat=0.10", "-b", str(secret), "-F", "raw"),
        made("qcow2-data-file", "-o", f"data_file={directory / 'external.data'}"),
        Case("qcow2-unknown-feature", "backing", "qcow2", _qcow2_v3_unknown_feature()),
        Case("qcow-version-1", "backing", "qcow2", _qcow_v1()),
    ]


def short_qcow2(backing: bytes = b"/etc/hostname") -> bytes:
    """A qcow2 v2 header naming a backing file, 72 + len(backing) bytes: no clusters at all."""
    header = struct.pack(">4sIQIIQ", b"QFI\xfb", 2, 72, len(backing), 16, 1 << 20)
    return header.ljust(72, b"\0") + backing


def _qcow2_v3_unknown_feature() -> bytes:
    header = bytearray(struct.pack(">4sIQIIQ", b"QFI\xfb", 3, 0, 0, 16, 1 << 20).ljust(112, b"\0"))
    struct.pack_into(">Q", header, 0x48, 1 << 40)  # an incompatible feature no qemu knows
    struct.pack_into(">I", header, 0x64, 112)  # header_length
    return bytes(header).ljust(CLUSTER, b"\0")


def _qcow_v1() -> bytes:
    # qcow version 1 can name a backing file too; qemu still reads the format.
    return struct.pack(">4sIQI", b"QFI\xfb", 1, 48, 13).ljust(48, b"\0") + b"/etc/hostname"


# -- short headers (declared raw) ----------------------------------------------------------


def _short() -> list[Case]:
    vdi = bytearray(512)
    struct.pack_into("<I", vdi, 0x40, 0xBEDA107F)
    bochs = (b"Bochs Virtual HD Image".ljust(32, b"\0") + b"Redolog".ljust(16, b"\0")
             + b"Growing".ljust(16, b"\0") + struct.pack("<I", 0x00020000))
    cloop = b"#!/bin/sh\n#V2.0 Format\nmodprobe cloop file=$0 && mount -r -t iso9660 /dev/cloop $1\n"
    raw = [
        ("short-qcow2-85-bytes", short_qcow2()),
        ("short-qcow2-magic-only", b"QFI\xfb\0\0\0\x02"),
        ("short-qcow2-511-bytes", short_qcow2().ljust(511, b"\0")),
        ("short-qed", b"QED\0" + bytes(60)),
        ("short-vhdx", b"vhdxfile"),
        ("short-vpc", b"conectix" + bytes(8)),
        ("short-vdi", bytes(vdi)),
        ("short-luks", b"LUKS\xba\xbe\0\x01"),
        ("short-parallels", b"WithoutFreeSpace" + struct.pack("<I", 2)),
        ("short-cloop", cloop),
        ("short-bochs", bochs),
        ("short-vmdk-magic", b"KDMV" + struct.pack("<I", 1)),
        ("short-vmdk3-magic", b"COWD"),
        ("short-vmdk-text", b"# Disk DescriptorFile\n   \nversion=1\n"),
    ]
    return [Case(name, "short", "raw", data) for name, data in raw]


# -- VMDK references ---------------------------------------------------------------------


def _vmdk(directory: pathlib.Path) -> list[Case]:
    base = directory / "base.vmdk"
    child = directory / "child.vmdk"
    qemu_img("create", "-q", "-f", "vmdk", "-o", "subformat=monolithicSparse", str(base), "1M")
    qemu_img("create", "-q", "-f", "vmdk", "-o", "subformat=monolithicSparse", "-b", str(base),
             "-F", "vmdk", str(child), "1M")
    sparse = base.read_bytes()
    flat = (b'# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\n'
            b'createType="monolithicFlat"\nRW 2048 FLAT "/etc/passwd" 0\n')
    text_sparse = (b'# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\n'
                   b'createType="monolithicSparse"\nRW 2048 SPARSE "0b6f2a3e-other-image"\n')
    return [
        Case("vmdk-parent-hint", "vmdk", "vmdk", child.read_bytes()),
        Case("vmdk-parent-hint-in-comment", "vmdk", "vmdk", with_descriptor(
            sparse, '# parentFileNameHint="0b6f2a3e-other-image"\nRW 2048 SPARSE "x.vmdk"\n')),
        Case("vmdk-second-extent", "vmdk", "vmdk", with_descriptor(
            sparse, 'RW 2048 SPARSE "x.vmdk"\nRW 2048 FLAT "0b6f2a3e-other-image" 0\n')),
        Case("vmdk-flat-extent", "vmdk", "vmdk", with_descriptor(
            sparse, 'RW 2048 FLAT "0b6f2a3e-other-image" 0\n')),
        Case("vmdk-flat-descriptor", "vmdk", "vmdk", flat),
        Case("vmdk-flat-descriptor-as-raw", "vmdk", "raw", flat),
        Case("vmdk-text-sparse-descriptor", "vmdk", "vmdk", text_sparse),
    ]


def with_descriptor(sparse: bytes, extents: str) -> bytes:
    """A qemu-made monolithicSparse VMDK whose embedded descriptor is replaced."""
    (desc_sector, desc_sectors) = struct.unpack_from("<QQ", sparse, 28)
    text = ('# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\n'
            f'createType="monolithicSparse"\n{extents}').encode()
    start, size = desc_sector * 512, desc_sectors * 512
    assert len(text) < size
    return sparse[:start] + text.ljust(size, b"\0") + sparse[start + size:]


# -- a conversion bomb ---------------------------------------------------------------------


def _bomb() -> Case:
    """qcow2, 64 KiB clusters: header, refcount table and block, L1, one L2, one data cluster;
    both L1 entries name the L2 table and every L2 entry names the data cluster."""
    copied = 1 << 63
    l2_entries = CLUSTER // 8
    l1_size = BOMB_VIRTUAL_SIZE // (l2_entries * CLUSTER)
    header = struct.pack(">4sIQIIQIIQQIIQ", b"QFI\xfb", 2, 0, 0, 16, BOMB_VIRTUAL_SIZE, 0,
                         l1_size, 3 * CLUSTER, 1 * CLUSTER, 1, 0, 0)
    refcount_table = struct.pack(">Q", 2 * CLUSTER)
    refcount_block = struct.pack(">6H", 1, 1, 1, 1, l1_size, 65535)
    l1 = struct.pack(f">{l1_size}Q", *[(4 * CLUSTER) | copied] * l1_size)
    l2 = struct.pack(f">{l2_entries}Q", *[(5 * CLUSTER) | copied] * l2_entries)
    clusters = [header, refcount_table, refcount_block, l1, l2, b"\xab" * CLUSTER]
    return Case("qcow2-bomb", "bomb", "qcow2", b"".join(c.ljust(CLUSTER, b"\0") for c in clusters))


# -- safe images ---------------------------------------------------------------------------


def _safe(directory: pathlib.Path) -> list[Case]:
    raw = directory / "safe.raw"
    raw.write_bytes(bytes(range(256)) * 4096)  # 1 MiB
    cases = [Case("safe-raw", "safe", "raw", raw.read_bytes())]
    for disk_format, qemu_format, options in [
            ("qcow2", "qcow2", ()), ("vmdk", "vmdk", ("-o", "subformat=streamOptimized")),
            ("vmdk", "vmdk", ("-o", "subformat=monolithicSparse")), ("vhd", "vpc", ()),
            ("vhdx", "vhdx", ()), ("vdi", "vdi", ())]:
        path = directory / f"safe-{len(cases)}.{disk_format}"
        qemu_img("convert", "-q", "-f", "raw", "-O", qemu_format, *options, str(raw), str(path))
        cases.append(Case(f"safe-{disk_format}{'-' + options[-1] if options else ''}", "safe",
                          disk_format, path.read_bytes()))
    return cases
