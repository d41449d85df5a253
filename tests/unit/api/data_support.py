"""Helpers for the data tests: what the store and staging area hold, a raw ASGI upload."""

from __future__ import annotations

import asyncio
import pathlib
from collections.abc import Callable
from typing import Any

from glint import app
from glint.api.app import create_app
from glint.stores.memory import MemoryStore, MemoryWriter

OCTET = {"Content-Type": "application/octet-stream"}


class BrokenStore(MemoryStore):
    """Fails once a writer has been given more than 1 MiB: a disk that fills up."""

    def writer(self, image_id: str) -> MemoryWriter:
        writer = super().writer(image_id)
        original = writer.write
        written = 0

        def write(data: bytes | memoryview) -> None:
            nonlocal written
            original(data)
            written += len(data)
            if written > 1024 * 1024:
                raise OSError(28, "No space left on device")

        writer.write = write  # type: ignore[method-assign]
        return writer


def stored(glint: app.Glint) -> dict[str, bytes]:
    """Every blob in the (memory) store."""
    assert isinstance(glint.store, MemoryStore)
    return dict(glint.store.blobs)


def staged_files(glint: app.Glint) -> list[str]:
    """Every file in the staging area, temporary ones included."""
    path = pathlib.Path(glint.settings.effective_staging_path)
    return sorted(p.name for p in path.iterdir()) if path.exists() else []


def raw_request(glint: app.Glint, method: str, path: str, headers: dict[str, str],
                messages: list[dict[str, Any]],
                between: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Drive the ASGI app with exactly ``messages`` from the client (a disconnect, say).

    ``between(i)`` runs before message ``i`` is received. Returns the response start message
    (or ``{}`` when none was sent).
    """
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": method, "scheme": "http", "path": path, "raw_path": path.encode(),
             "query_string": b"", "root_path": "", "client": ("127.0.0.1", 1),
             "server": ("127.0.0.1", 80),
             "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()]}
    sent: list[dict[str, Any]] = []
    pending = list(messages)

    async def receive() -> dict[str, Any]:
        if not pending:
            await asyncio.sleep(3600)
        if between is not None:
            between(len(messages) - len(pending))
        return pending.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(create_app(glint, manage_lifecycle=False)(scope, receive, send))
    return next((m for m in sent if m["type"] == "http.response.start"), {})


def body(data: bytes, more: bool = True) -> dict[str, Any]:
    return {"type": "http.request", "body": data, "more_body": more}


DISCONNECT = {"type": "http.disconnect"}
