"""What ``qemu-img`` would take a file for, judged from its first bytes as qemu's probes do.

qemu picks a format it is not told by reading the first :data:`PROBE_SIZE` bytes (zero-padded
past the end of a short file) and asking each format driver's ``probe`` function; ``raw`` is
what is left when none answers. oslo.utils' format inspector needs whole headers (512 bytes
for qcow2), so a file shorter than that passes it as raw while qemu reads it as qcow2, backing
file and all. :func:`probe` applies qemu's own rules instead, on the bytes whatever their
length: the formats whose magic (and, where qemu checks one, version) is there.

Formats qemu recognises by file name only (``dmg``, ``vvfat``, protocols such as ``nbd:``)
cannot match: glint names its files itself.
"""

from __future__ import annotations

import struct

PROBE_SIZE = 2048  # qemu's BLOCK_PROBE_BUF_SIZE

_CLOOP = (b"#!/bin/sh\n#V2.0 Format\n"
          b"modprobe cloop file=$0 && mount -r -t iso9660 /dev/cloop $1\n")
_VDI_SIGNATURE = 0xBEDA107F
_VMDK_VERSIONS = tuple(f"version={n}{end}".encode()
                       for n in (1, 2, 3) for end in ("\n", "\r\n"))


def probe(head: bytes) -> frozenset[str]:
    """The qemu formats (qemu's names: ``qcow2``, ``vpc``...) the bytes would be read as."""
    buf = head[:PROBE_SIZE].ljust(PROBE_SIZE, b"\0")
    return frozenset(name for name, test in _PROBES if test(buf))


def _qcow(buf: bytes) -> bool:
    magic, version = struct.unpack_from(">4sI", buf)
    return bool(magic == b"QFI\xfb" and version == 1)


def _qcow2(buf: bytes) -> bool:
    magic, version = struct.unpack_from(">4sI", buf)
    return bool(magic == b"QFI\xfb" and version >= 2)


def _bochs(buf: bytes) -> bool:
    magic, kind, subtype = (_cstring(buf[0:32]), _cstring(buf[32:48]), _cstring(buf[48:64]))
    (version,) = struct.unpack_from("<I", buf, 64)
    return (magic == b"Bochs Virtual HD Image" and kind == b"Redolog" and subtype == b"Growing"
            and version in (0x00010000, 0x00020000))


def _parallels(buf: bytes) -> bool:
    magic, version = struct.unpack_from("<16sI", buf)
    return bool(magic in (b"WithoutFreeSpace", b"WithouFreSpacExt") and version == 2)


def _vdi(buf: bytes) -> bool:
    (signature,) = struct.unpack_from("<I", buf, 0x40)
    return bool(signature == _VDI_SIGNATURE)


def _vmdk(buf: bytes) -> bool:
    if buf[:4] in (b"KDMV", b"COWD"):
        return True
    # A plain-text descriptor: comment lines and blank (space-only) lines, then "version=N".
    position, end = 0, len(buf)
    while position < end:
        byte = buf[position]
        if byte == ord("#"):
            newline = buf.find(b"\n", position)
            position = end if newline < 0 else newline + 1
        elif byte == ord(" "):
            while position < end and buf[position] == ord(" "):
                position += 1
            if position < end and buf[position] == ord("\r"):
                position += 1
            if position == end or buf[position] != ord("\n"):
                return False
            position += 1
        else:
            return buf.startswith(_VMDK_VERSIONS, position)
    return False


def _cstring(field: bytes) -> bytes:
    return field.split(b"\0", 1)[0]


_PROBES = (
    ("bochs", _bochs),
    ("cloop", lambda buf: buf.startswith(_CLOOP)),
    ("luks", lambda buf: buf.startswith(b"LUKS\xba\xbe")),
    ("parallels", _parallels),
    ("qcow", _qcow),
    ("qcow2", _qcow2),
    ("qed", lambda buf: buf.startswith(b"QED\0")),
    ("vdi", _vdi),
    ("vhdx", lambda buf: buf.startswith(b"vhdxfile")),
    ("vmdk", _vmdk),
    ("vpc", lambda buf: buf.startswith(b"conectix")),
)
