"""What an inspection holds while a large image streams past it (issue 18: memory per import)."""

from __future__ import annotations

import gc
import os
import tracemalloc

from glint import inspection


def test_once_decided_an_inspection_holds_next_to_nothing() -> None:
    data = os.urandom(inspection.BLOCK_SIZE)
    tracemalloc.start()
    try:
        checked = inspection.Inspection()
        checked.feed(memoryview(data))
        checked.feed(data)
        gc.collect()
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # The inspectors that dropped out (and their captured regions, up to a MiB) are gone.
    assert held < 64 * 1024
    assert checked.verdict("raw").disk_format == "raw"
