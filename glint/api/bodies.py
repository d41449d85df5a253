"""Reading JSON request bodies: bounded in size and depth, with 400s that say what was wrong."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request

from glint import digits, errors

MAX_JSON_BYTES = 1024 * 1024
MAX_DEPTH = 32


async def json_object(request: Request) -> dict[str, Any]:
    """The body as a JSON object (TooLarge past ``MAX_JSON_BYTES``, BadRequest if malformed)."""
    value = await json_value(request)
    if not isinstance(value, dict):
        raise errors.BadRequest("The request body must be a JSON object.")
    return value


async def json_value(request: Request) -> Any:
    """The body as any JSON value, with the same limits and checks as :func:`json_object`."""
    raw = await _read(request)
    if not raw.strip():
        raise errors.BadRequest("Body expected in request.")
    try:
        value = json.loads(raw, parse_constant=_no_constant)
    except (ValueError, RecursionError):
        raise errors.BadRequest("Malformed JSON in request body.") from None
    _check(value, 0)
    return value


async def _read(request: Request) -> bytes:
    declared = digits.parse(request.headers.get("content-length", ""))
    if declared is not None and declared > MAX_JSON_BYTES:
        raise errors.TooLarge(f"Request body larger than {MAX_JSON_BYTES} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_JSON_BYTES:
            raise errors.TooLarge(f"Request body larger than {MAX_JSON_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def _check(value: Any, depth: int) -> None:
    """Refuse what JSON allows but glint cannot store: deep nesting, NULs, lone surrogates."""
    if depth > MAX_DEPTH:
        raise errors.BadRequest(f"JSON nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, str):
        _check_string(value)
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_string(key)
            _check(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check(item, depth + 1)


def _check_string(value: str) -> None:
    if "\x00" in value:
        raise errors.BadRequest("JSON strings must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise errors.BadRequest("JSON strings must be valid Unicode "
                                "(no unpaired surrogates)") from None
