"""Opening the database file: DuckDB's lock error becomes one sentence naming the holder."""

from __future__ import annotations

import re
from pathlib import Path

import duckdb

from afterload.destinations.base import (
    DestinationError,
    LockedError,
)


def literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _locked_message(path: Path, exc: Exception) -> str:
    pid = re.search(r"PID (\d+)", str(exc))
    who = f" (pid {pid.group(1)})" if pid else ""
    return f"another afterload process{who} holds {path}; stop it or use another database file"


SAME_PROCESS = "different configuration than existing connections"
"""DuckDB's words when this process has the file open with other settings (read-only)."""


def connect(path: Path, *, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """Open the file, turning DuckDB's lock error into one sentence."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return duckdb.connect(str(path), read_only=read_only)
    except duckdb.IOException as exc:
        if "lock" in str(exc).lower():
            raise LockedError(_locked_message(path, exc)) from None
        raise DestinationError(f"cannot open {path}: {exc}") from None
    except duckdb.ConnectionException as exc:
        if SAME_PROCESS in str(exc):
            # A connection of this very process (the Python API beside a reader) holds the
            # file read-only, or read-write while we read: DuckDB's file lock does not apply.
            raise LockedError(f"a connection in this process holds {path}") from None
        raise DestinationError(f"cannot open {path}: {exc}") from None
