"""The run ledger in DuckDB: ``_afterload_runs`` beside the data, written in the process's turn.

The trigger thread writes here while the loader commits; DuckDB allows one transaction per
connection, so every write takes the destination's turn (the lock its commits hold) and uses a
cursor of the destination's own connection: never a second connection to the file.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import duckdb

from afterload.destinations.base import DestinationError
from afterload.destinations.duckdb.catalog import Catalog
from afterload.destinations.duckdb.connect import connect
from afterload.destinations.ledger import (
    LedgerEntry,
    create_sql,
    finish_sql,
    from_row,
    insert_sql,
    select_sql,
)
from afterload.destinations.sql import first_line


def read_ledger(
    con: duckdb.DuckDBPyConnection,
    schema: str,
    materialization: str,
    *,
    last: int | None = None,
    open_only: bool = False,
) -> list[LedgerEntry]:
    """The ledger's rows, newest first; none when the table does not exist yet."""
    sql = select_sql(schema, "?", last=last, open_only=open_only)
    try:
        rows = con.execute(sql, [materialization]).fetchall()
    except duckdb.CatalogException:
        return []
    return [from_row(row) for row in rows]


class DuckDBLedger(Catalog):
    """Implements :class:`afterload.destinations.ledger.RunLedger` for the DuckDB destination."""

    _turn: threading.RLock
    _stage_dir: Path | None

    def _create_ledger(self) -> None:
        self.con.execute(create_sql(self.schema))

    @contextmanager
    def _ledger_cursor(self, what: str) -> Iterator[duckdb.DuckDBPyConnection]:
        """A cursor of the destination's connection, in its turn. If the connection was
        released between commits (the file is left free for others while caught up), the file
        is taken for this one statement and released again, still in the turn."""
        with self._turn:
            try:
                if self._con is not None:
                    cur = self._con.cursor()
                elif self._stage_dir is not None:  # open, connection released
                    cur = self._ledger_connect()
                else:
                    raise DestinationError(f"{self.path} is not open")
            except duckdb.Error as exc:
                raise DestinationError(f"{self.path}: {what} failed: {first_line(exc)}") from None
            try:
                yield cur
            except duckdb.Error as exc:
                raise DestinationError(f"{self.path}: {what} failed: {first_line(exc)}") from None
            finally:
                cur.close()

    def _ledger_connect(self) -> duckdb.DuckDBPyConnection:
        """The file for one ledger statement while the connection is released."""
        return connect(self.path)

    def _ledger_write(self, sql: str, params: list[object], what: str) -> None:
        with self._ledger_cursor(what) as cur:
            cur.execute(sql, params)

    def record_run(self, entry: LedgerEntry) -> None:
        self._ledger_write(insert_sql(self.schema, "?"), entry.values(), "recording a run")

    def finish_run(self, entry: str, status: str, finished_at: datetime) -> None:
        sql = finish_sql(self.schema, "?")
        self._ledger_write(sql, [status, finished_at, entry], "recording a run's end")

    def read_runs(
        self, materialization: str, *, last: int | None = None, open_only: bool = False
    ) -> list[LedgerEntry]:
        with self._ledger_cursor("reading the run ledger") as cur:
            return read_ledger(cur, self.schema, materialization, last=last, open_only=open_only)
