"""Stores that misbehave on purpose, for tests of what glint does when a store fails."""

from __future__ import annotations

from glint.stores.memory import MemoryStore, MemoryWriter


class FullStore(MemoryStore):
    """A store whose disk is full: every write fails (ENOSPC)."""

    def writer(self, image_id: str) -> MemoryWriter:
        writer = super().writer(image_id)

        def write(data: bytes | memoryview) -> None:
            raise OSError(28, "No space left on device")

        writer.write = write  # type: ignore[method-assign]
        return writer
