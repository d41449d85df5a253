"""Decompressing import data as it streams: gzip, xz and zstd, with a bound on what comes out.

Asked for by the ``import`` task's ``decompress`` input or the ``import_decompress`` setting.
The format is recognised by its magic number; data that is not compressed passes through
unchanged, as with Glance's decompression plugin. gzip and xz use the standard library (their
trailers catch truncated data); zstd needs the ``zstandard`` package (``pip install
'glint[zstd]'``), and zstd data without it fails the task with a message saying so. zstandard's
bounded reader does not report a stream cut short inside a frame: such data ends where it ends
(and goes on to the format checks like any other).

Output comes in pieces of at most :data:`PIECE` bytes, however well the data compresses, so
memory stays flat; as soon as more than ``limit`` bytes have come out the task fails with
:class:`glint.errors.TooLarge` (a decompression bomb costs its limit, not the disk).
"""

from __future__ import annotations

import importlib
import itertools
import lzma
import zlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from glint import errors

PIECE = 1024 * 1024
MAGIC = {"gzip": b"\x1f\x8b", "xz": b"\xfd7zXZ\x00", "zstd": b"\x28\xb5\x2f\xfd"}
_HEAD = max(len(m) for m in MAGIC.values())


def decompress(chunks: Iterable[bytes], limit: int) -> Iterator[bytes]:
    """``chunks`` decompressed if they start with a known magic number, else as they are."""
    source = iter(chunks)
    head = b""
    for chunk in source:
        head += chunk
        if len(head) >= _HEAD:
            break
    data = itertools.chain([head], source)
    kind = next((k for k, magic in MAGIC.items() if head.startswith(magic)), None)
    if kind is None:
        yield from data
        return
    produced = 0
    try:
        for piece in _DECODERS[kind](data):
            produced += len(piece)
            if produced > limit:
                raise errors.TooLarge(
                    f"Decompressed image data exceeds {limit} bytes (import_decompressed_size_cap"
                    f" or image_size_cap): refused as a possible decompression bomb")
            yield piece
    except (zlib.error, lzma.LZMAError, EOFError) as exc:
        raise errors.ScriptError(f"The import data is not valid {kind} data: {exc}") from exc
    except Exception as exc:
        if type(exc).__name__ != "ZstdError":
            raise
        raise errors.ScriptError(f"The import data is not valid zstd data: {exc}") from exc


def _gunzip(data: Iterable[bytes]) -> Iterator[bytes]:
    decoder = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    started = False  # a member has begun and not ended
    for chunk in data:
        while chunk:
            started = True
            yield from _inflate(decoder, chunk)
            if not decoder.eof:
                break  # the chunk is used up; the member goes on in the next one
            chunk = decoder.unused_data  # gzip files concatenate: another member may follow
            decoder = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
            started = False
    if started:
        raise EOFError("the compressed data ends early")


def _inflate(decoder: Any, chunk: bytes) -> Iterator[bytes]:
    while True:
        piece = decoder.decompress(chunk, PIECE)
        if piece:
            yield piece
        chunk = decoder.unconsumed_tail
        if decoder.eof or (not chunk and len(piece) < PIECE):
            return


def _unxz(data: Iterable[bytes]) -> Iterator[bytes]:
    decoder = lzma.LZMADecompressor(format=lzma.FORMAT_XZ)
    started = False
    for chunk in data:
        while chunk:
            started = True
            while True:
                piece = decoder.decompress(chunk, PIECE)
                chunk = b""
                if piece:
                    yield piece
                if decoder.eof or decoder.needs_input:
                    break
            if not decoder.eof:
                break
            chunk = decoder.unused_data  # xz files concatenate too
            decoder = lzma.LZMADecompressor(format=lzma.FORMAT_XZ)
            started = False
    if started:
        raise EOFError("the compressed data ends early")


def _unzstd(data: Iterable[bytes]) -> Iterator[bytes]:
    try:
        zstandard = importlib.import_module("zstandard")
    except ImportError:
        raise errors.ScriptError("The import data is zstd-compressed and glint cannot "
                                 "decompress zstd without the zstandard package: install "
                                 "'glint[zstd]'") from None
    reader = zstandard.ZstdDecompressor().stream_reader(_Reader(data), read_across_frames=True)
    while piece := reader.read(PIECE):
        yield piece


class _Reader:
    """A file-like ``read`` over an iterable of chunks (what zstandard's reader wants)."""

    def __init__(self, data: Iterable[bytes]) -> None:
        self._data = iter(data)
        self._pending = b""

    def read(self, size: int = -1) -> bytes:
        while not self._pending:
            chunk = next(self._data, None)
            if chunk is None:
                return b""
            self._pending = chunk
        if size < 0:
            size = len(self._pending)
        piece, self._pending = self._pending[:size], self._pending[size:]
        return piece


_DECODERS: dict[str, Callable[[Iterable[bytes]], Iterator[bytes]]] = {
    "gzip": _gunzip, "xz": _unxz, "zstd": _unzstd}
