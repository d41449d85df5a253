"""What a log line is about: the request, project and task it was written for.

The API binds the request id and project for the length of a request (``glint.api``), the
runner binds the task id, task type, project and the request id that created the task for the
length of a run, in ``glint serve`` and ``glint worker`` alike. :class:`ContextFilter` puts
those on every log record of the process, glint's and its libraries' alike, so one grep of a
request id finds the request, the task it created and everything the task did, on every node.

``text`` lines read ``... glint.tasks.runner [req-… project=p task=t(import)]: message``;
``json`` lines (the ``log_format`` setting) carry the same as fields, for a log pipeline.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import types
from collections.abc import Iterator, Mapping

FIELDS = ("request_id", "project_id", "task_id", "task_type")
_NOTHING: Mapping[str, str] = types.MappingProxyType({})
_CURRENT: contextvars.ContextVar[Mapping[str, str]] = contextvars.ContextVar(
    "glint_log_context", default=_NOTHING)
TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s%(glint_context)s: %(message)s"
TEXT_FORMAT_PROCESSES = ("%(asctime)s %(levelname)-7s [%(process)d] %(name)s%(glint_context)s: "
                         "%(message)s")


@contextlib.contextmanager
def bound(**fields: str | None) -> Iterator[None]:
    """Add ``fields`` (of :data:`FIELDS`; None leaves one as it was) to every log line
    written inside the block, in this thread or task and the threads it hands work to
    through ``contextvars`` (Starlette's thread pool does)."""
    token = _CURRENT.set({**_CURRENT.get(),
                          **{key: value for key, value in fields.items() if value}})
    try:
        yield
    finally:
        _CURRENT.reset(token)


class ContextFilter(logging.Filter):
    """Puts the bound fields on each record (a handler's filter: it sees every logger's)."""

    def filter(self, record: logging.LogRecord) -> bool:
        fields = _CURRENT.get()
        for key in FIELDS:
            setattr(record, key, fields.get(key))
        record.glint_context = _text(fields)
        return True


def _text(fields: Mapping[str, str]) -> str:
    if not fields:
        return ""
    parts = [fields["request_id"]] if "request_id" in fields else []
    if "project_id" in fields:
        parts.append(f"project={fields['project_id']}")
    if "task_id" in fields:
        parts.append(f"task={fields['task_id']}({fields.get('task_type', '?')})")
    return f" [{' '.join(parts)}]"


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, process, message, the bound fields."""

    def format(self, record: logging.LogRecord) -> str:
        line = {"time": self.formatTime(record), "level": record.levelname,
                "logger": record.name, "process": record.process,
                "message": record.getMessage()}
        line.update({key: value for key in FIELDS
                     if (value := getattr(record, key, None)) is not None})
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line)


def config(level: str, log_format: str, processes: bool = False) -> dict[str, object]:
    """A ``logging.config.dictConfig`` dictionary for glint's commands."""
    formatter: dict[str, object] = (
        {"()": "glint.logcontext.JsonFormatter"} if log_format == "json"
        else {"format": TEXT_FORMAT_PROCESSES if processes else TEXT_FORMAT})
    return {"version": 1, "disable_existing_loggers": False,
            "filters": {"context": {"()": "glint.logcontext.ContextFilter"}},
            "formatters": {"glint": formatter},
            "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "glint",
                                    "filters": ["context"]}},
            "root": {"level": level.upper(), "handlers": ["stderr"]},
            # swiftclient logs each failed request with (the start of) its token at INFO.
            "loggers": {"alembic": {"level": "WARNING"}, "swiftclient": {"level": "WARNING"}}}
