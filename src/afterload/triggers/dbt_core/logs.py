"""dbt's JSON log lines (``--log-format json``) turned into log records of our own.

One line per finished node at INFO (what a person follows), errors at WARNING, the rest at
DEBUG. Parsing is pure so it can be tested on any bytes dbt might print, including lines that
are not JSON at all (a traceback on stderr).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from afterload.triggers.dbt_core.results import first_line

#: Events that report one node's end: the line a person wants per model, test, seed, snapshot.
NODE_RESULTS = frozenset(
    {
        "LogModelResult",
        "LogTestResult",
        "LogSeedResult",
        "LogSnapshotResult",
        "LogNodeResult",
        "LogFreshnessResult",
        "SQLRunnerException",
    }
)
#: The run's verdict is worth a line at INFO too.
SUMMARY = frozenset({"StatsLine", "EndOfRunSummary", "MainReportVersion"})


@dataclass(frozen=True, slots=True)
class LogLine:
    level: int
    text: str
    name: str = ""
    invocation_id: str | None = None
    error: str | None = None  # the first informative line of an error event
    raw: str = ""  # dbt's whole message, for the few events read further


def parse_line(raw: str) -> LogLine:
    """One line of dbt's output; anything that is not a dbt JSON event is DEBUG text."""
    stripped = raw.rstrip("\r\n")
    try:
        event = json.loads(stripped)
        info = event["info"]
        name = str(info.get("name", ""))
        msg = str(info.get("msg", ""))
        level_name = str(info.get("level", "debug"))
    except (ValueError, KeyError, TypeError, AttributeError):
        return LogLine(logging.DEBUG, stripped)
    invocation = info.get("invocation_id")
    invocation_id = invocation if isinstance(invocation, str) else None
    text = " ".join(msg.split()) if name not in NODE_RESULTS else msg.strip()
    if level_name == "error":
        data = event.get("data")
        exc = data.get("exc") if isinstance(data, dict) else None
        why = first_line(exc if isinstance(exc, str) else msg)
        return LogLine(logging.WARNING, first_line(msg) or text, name, invocation_id, why, msg)
    if name in NODE_RESULTS or name in SUMMARY:
        level = logging.WARNING if level_name == "warn" else logging.INFO
        return LogLine(level, first_line(msg), name, invocation_id, raw=msg)
    return LogLine(logging.DEBUG, text, name, invocation_id, raw=msg)
