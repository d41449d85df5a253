"""The ``noop`` task script: does nothing but say when it started (for dispatch latency).

The harness compares ``started`` (epoch seconds, taken as the script begins, so just after the
runner moved the task to ``processing``) with the task's ``created_at`` in the database.
"""

from __future__ import annotations

import time
from typing import Any

from glint.scripts import contract

DESCRIPTION = "Benchmark only: does nothing and records when it started."

INPUT_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
}


def main(ctx: contract.ScriptContext) -> contract.JsonObject:
    return {"started": time.time()}
