"""Logging on stderr as JSON lines, in the shape Flow's runtime decodes into its ops logs.

The runtime reads ``ts`` (RFC 3339), ``level`` (trace, debug, info, warn, error),
``message`` and a ``fields`` object, and treats anything else on the line as extra fields;
a line that is not JSON becomes a warning (or an error, if it looks like one). So every
record is written as one such object, and ``LOG_LEVEL`` (default info) chooses the level.
Secrets never reach here: configs are logged through their models, which mask them.
"""

from __future__ import annotations

import logging
import os
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

from afterload.flow.response import dumps

_LEVELS = {
    logging.DEBUG: "debug",
    logging.INFO: "info",
    logging.WARNING: "warn",
    logging.ERROR: "error",
    logging.CRITICAL: "error",
}
_STANDARD = set(logging.LogRecord("", 0, "", 0, None, None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}


def level_name(levelno: int) -> str:
    """The runtime's name for a logging level (below debug counts as trace)."""
    if levelno < logging.DEBUG:
        return "trace"
    for threshold in sorted(_LEVELS, reverse=True):
        if levelno >= threshold:
            return _LEVELS[threshold]
    return "debug"


class FlowLogFormatter(logging.Formatter):
    """One JSON object per record: ts, level, message, and the ``extra=`` keys as fields."""

    def format(self, record: logging.LogRecord) -> str:
        fields: dict[str, Any] = {
            key: value for key, value in record.__dict__.items() if key not in _STANDARD
        }
        fields["logger"] = record.name
        if record.exc_info:
            fields["traceback"] = self.formatException(record.exc_info).splitlines()
        line = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": level_name(record.levelno),
            "message": record.getMessage(),
            "fields": fields,
        }
        try:
            return dumps(line).decode()
        except TypeError:
            line["fields"] = {key: repr(value) for key, value in fields.items()}
            return dumps(line).decode()


def parse_level(value: str | None) -> int:
    """``LOG_LEVEL`` → a logging level; unknown names fall back to info."""
    names = {
        "trace": 5,
        "debug": logging.DEBUG,
        "info": logging.INFO,
        "warn": logging.WARNING,
        "warning": logging.WARNING,
        "error": logging.ERROR,
    }
    return names.get((value or "info").strip().lower(), logging.INFO)


def configure(stream: TextIO | None = None, level: str | None = None) -> logging.Logger:
    """Route afterload's loggers to stderr as Flow log lines; returns the connector logger."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(FlowLogFormatter())
    root = logging.getLogger("afterload")
    root.handlers[:] = [handler]
    root.propagate = False
    root.setLevel(parse_level(level if level is not None else os.environ.get("LOG_LEVEL")))
    return logging.getLogger("afterload.flow")
