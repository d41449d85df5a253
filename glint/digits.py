"""Decimal numbers as HTTP headers and query strings write them: ASCII digits only.

Python is more generous than HTTP: ``str.isdigit()`` is true for ``'²'`` (which ``int()`` then
refuses, a 500 where a 400 was due), and ``int()`` reads ``'٣'``, ``' 7 '`` and ``'1_000'``, which
no other HTTP implementation would take for numbers. Every number glint reads from a request
header, a query parameter or an HTTP response goes through :func:`parse` instead.
"""

from __future__ import annotations

import re

MAX_DIGITS = 20  # more than any 64-bit count of bytes; longer is refused, not parsed
_UNSIGNED = re.compile(rf"[0-9]{{1,{MAX_DIGITS}}}")
_SIGNED = re.compile(rf"[-+]?[0-9]{{1,{MAX_DIGITS}}}")


def parse(text: str, *, signed: bool = False) -> int | None:
    """``text`` as an int when it is 1 to MAX_DIGITS ASCII digits (with ``signed``, after an
    optional ``+`` or ``-``); None otherwise. No whitespace, underscores or other scripts'
    digits."""
    pattern = _SIGNED if signed else _UNSIGNED
    return int(text) if pattern.fullmatch(text) else None
