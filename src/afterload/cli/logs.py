"""How the command line logs: rich on a terminal, one plain line per record in a pipe, or one
JSON object per line for log pipelines.

Log records may carry structured fields through ``extra=`` (see :data:`FIELDS`); the JSON
format emits them as keys, the text formats only show the message. Global options
(``-v``, ``--log-level``, ``--log-format``) are accepted before or after the subcommand:
:func:`hoist_global_options` moves them in front of it before click parses the line.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Literal, TextIO

if TYPE_CHECKING:
    from rich.console import Console

LogFormat = Literal["text", "json"]


class Level(StrEnum):
    debug = "debug"
    info = "info"
    warning = "warning"
    error = "error"


class Format(StrEnum):
    text = "text"
    json = "json"


FIELDS = ("binding", "transaction", "counts", "reason", "run", "file")
"""Structured fields a record may carry through ``extra=``; JSON logs emit them as keys."""

_FLAGS = frozenset({"-v", "--verbose"})
_WITH_VALUE = frozenset({"--log-level", "--log-format"})
_NOISY = {"stamina": logging.ERROR}
"""Libraries whose records are internals (every retry): shown only at debug; above it, only
at this level and higher (our own records say what matters)."""
_NEVER_BELOW = {"httpx": logging.WARNING, "httpcore": logging.WARNING}
"""Libraries whose records hold what a server sent and where to (a webhook URL's path is its
secret, a reason phrase may echo a header): never shown below WARNING, not even at debug."""


def hoist_global_options(args: Sequence[str]) -> list[str]:
    """Move the global logging options found after the subcommand in front of it.

    ``afterload run x.yaml -v`` then means ``afterload -v run x.yaml``; everything after a
    bare ``--`` is left alone.
    """
    hoisted: list[str] = []
    rest: list[str] = []
    items = list(args)
    i = 0
    while i < len(items):
        arg = items[i]
        if arg == "--":
            rest.extend(items[i:])
            break
        name = arg.split("=", 1)[0]
        if arg in _FLAGS or (name in _WITH_VALUE and "=" in arg):
            hoisted.append(arg)
        elif name in _WITH_VALUE and i + 1 < len(items):
            hoisted += [arg, items[i + 1]]
            i += 1
        else:
            rest.append(arg)
        i += 1
    return hoisted + rest


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, event, and the structured fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        for key in FIELDS:
            value = getattr(record, key, None)
            if value is not None:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def logging_json() -> bool:
    """Whether the root logger writes JSON lines (then no progress bar mixes into them)."""
    return any(isinstance(h.formatter, JsonFormatter) for h in logging.getLogger().handlers)


def text_formatter() -> logging.Formatter:
    return logging.Formatter("%(asctime)s %(levelname)-7s %(message)s", datefmt="%H:%M:%S")


def make_handler(log_format: LogFormat, stream: TextIO, console: Console | None) -> logging.Handler:
    """JSON lines; rich (wrapping to the width) on a terminal; one plain line per record else."""
    if log_format == "json":
        handler: logging.Handler = logging.StreamHandler(stream)
        handler.setFormatter(JsonFormatter())
        return handler
    if console is not None and console.is_terminal:
        from rich.logging import RichHandler

        return RichHandler(console=console, show_path=False, rich_tracebacks=False, markup=False)
    handler = logging.StreamHandler(stream)
    handler.setFormatter(text_formatter())
    return handler


def setup_logging(
    level: str = "info",
    log_format: LogFormat = "text",
    *,
    stream: TextIO | None = None,
    console: Console | None = None,
) -> None:
    """Configure the root logger for one command."""
    numeric = getattr(logging, level.upper())
    handler = make_handler(log_format, stream or sys.stderr, console)
    logging.basicConfig(level=numeric, format="%(message)s", handlers=[handler], force=True)
    for name, quiet in _NOISY.items():
        logging.getLogger(name).setLevel(logging.NOTSET if numeric <= logging.DEBUG else quiet)
    for name, floor in _NEVER_BELOW.items():
        logging.getLogger(name).setLevel(floor)
