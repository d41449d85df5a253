"""Task scripts and rows for the task lifecycle tests (test_tasks.py, test_dashboard.py)."""

from __future__ import annotations

import types
import uuid
from typing import Any

from glint import app, errors
from glint.context import RequestContext
from glint.db import models
from glint.db import tasks as task_rows
from glint.scripts.contract import ScriptContext
from glint.scripts.registry import Registry

SCHEMA = {"type": "object", "required": ["value"],
          "properties": {"value": {"type": "integer"}}, "additionalProperties": False}


def echo(sctx: ScriptContext) -> dict[str, Any]:
    return {"echo": sctx.task_input["value"]}


def refuse(sctx: ScriptContext) -> dict[str, Any]:
    raise errors.ScriptError(f"value {sctx.task_input['value']} is not welcome")


def registry(**mains: Any) -> Registry:
    return Registry.of({name: types.SimpleNamespace(main=main, INPUT_SCHEMA=SCHEMA)
                        for name, main in mains.items()})


def insert(glint: app.Glint, ctx: RequestContext, **values: Any) -> models.Task:
    """A task row written directly, for states the API cannot produce on demand."""
    fields: dict[str, Any] = {"id": str(uuid.uuid4()), "type": "echo", "status": "pending",
                              "owner": ctx.owner, "input": {"value": 1}, "message": "",
                              "context": ctx.to_dict()}
    fields.update(values)
    task = models.Task(**fields)
    with glint.db.session() as session:
        task_rows.add(session, task)
    return task
