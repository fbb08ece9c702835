"""What is particular to DuckDB: the file lock names its holder (the rest: test_contract.py)."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from afterload.core.schema import TableShape
from afterload.destinations.base import LockedError, TableWrite
from afterload.destinations.duckdb.destination import DuckDBDestination

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def write(shape: TableShape, *docs: bytes, deletes: tuple[bytes, ...] = ()) -> TableWrite:
    return TableWrite(shape.binding, shape.binding, shape, list(docs), list(deletes))


def observed(shape: TableShape, *docs: dict[str, object]) -> TableShape:
    for doc in docs:
        shape.observe(doc)
    return shape


def test_another_process_holding_the_file_is_named(tmp_path: Path) -> None:
    db = tmp_path / "w.duckdb"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import duckdb,sys,time; c=duckdb.connect({str(db)!r}); print('ok', flush=True); "
            "sys.stdin.read()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ok"
        with pytest.raises(
            LockedError, match=rf"another afterload process \(pid {holder.pid}\) holds"
        ):
            DuckDBDestination(db).open("shop")
    finally:
        holder.communicate("")
