"""Read-only access to the committed state, for ``afterload status`` and ``check``."""

from __future__ import annotations

from pathlib import Path

import duckdb

from afterload.core.checkpoint import BindingCheckpoint, Checkpoint
from afterload.destinations.base import (
    Recovered,
    others_tables,
)
from afterload.destinations.duckdb.connect import connect
from afterload.destinations.duckdb.destination import from_epoch_us
from afterload.destinations.duckdb.ledger import read_ledger
from afterload.destinations.ledger import LedgerEntry
from afterload.destinations.sql import CHECKPOINTS, quote


class DuckDBStatus:
    """Read-only access for ``afterload status``."""

    def __init__(self, path: Path, schema: str) -> None:
        self.path = path
        self.schema = schema
        self.name = str(path)
        self.con = connect(path, read_only=True)

    def read_checkpoint(self, materialization: str) -> Recovered | None:
        try:
            row = self.con.execute(
                f"SELECT fence, checkpoint, epoch_us(committed_at), transactions "
                f"FROM {quote(self.schema)}.{quote(CHECKPOINTS)} WHERE materialization = ?",
                [materialization],
            ).fetchone()
        except duckdb.CatalogException:
            return None
        if row is None:
            return None
        return Recovered(
            checkpoint=Checkpoint.from_json(row[1]),
            fence=int(row[0]),
            committed_at=from_epoch_us(row[2]),
            transactions=int(row[3]),
        )

    def other_tables(self, materialization: str) -> dict[str, dict[str, BindingCheckpoint]]:
        try:
            rows = self.con.execute(
                f"SELECT materialization, checkpoint "
                f"FROM {quote(self.schema)}.{quote(CHECKPOINTS)} WHERE materialization <> ?",
                [materialization],
            ).fetchall()
        except duckdb.CatalogException:
            return {}
        return others_tables(rows)

    def row_count(self, table: str) -> int | None:
        try:
            row = self.con.execute(
                f"SELECT count(*) FROM {quote(self.schema)}.{quote(table)}"
            ).fetchone()
        except duckdb.CatalogException:
            return None
        return None if row is None else int(row[0])

    def read_runs(
        self, materialization: str, *, last: int | None = None, open_only: bool = False
    ) -> list[LedgerEntry]:
        """The run ledger, newest first (see :mod:`afterload.destinations.ledger`)."""
        return read_ledger(self.con, self.schema, materialization, last=last, open_only=open_only)

    def close(self) -> None:
        self.con.close()
