"""The DuckDB destination: the fence, the commit, with the catalog and the writer mixed in."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from afterload.core.checkpoint import Checkpoint
from afterload.core.column_names import ColumnNames
from afterload.core.schema import ColumnType
from afterload.destinations.base import (
    DestinationError,
    FencedError,
    Recovered,
    TableWrite,
    others_tables,
)
from afterload.destinations.duckdb.connect import connect, literal
from afterload.destinations.duckdb.ledger import DuckDBLedger
from afterload.destinations.duckdb.survey import Surveyor
from afterload.destinations.duckdb.writer import Writer
from afterload.destinations.sql import CHECKPOINTS, first_line, quote


def from_epoch_us(value: Any) -> datetime | None:
    if value is None:
        return None
    return datetime.fromtimestamp(int(value) / 1_000_000, tz=UTC)


class DuckDBDestination(Writer, DuckDBLedger):
    """Implements :class:`afterload.destinations.base.Destination` on a DuckDB file."""

    stores_nul = True
    wide_ints: int | None = 128
    empty_names = False  # DuckDB refuses a zero-length identifier
    far_offsets = True  # any offset RFC 3339 allows
    column_names: ColumnNames | None = None  # each column named by its property
    optional_document = True

    def __init__(
        self,
        path: Path,
        schema: str = "main",
        *,
        memory_limit: str | None = None,
        survey: bool = True,
    ) -> None:
        self.path = path
        self.survey = survey
        """Whether usual lines are read by DuckDB (off: every line through the exact path)."""
        self.schema = schema
        self.memory_limit = memory_limit
        self.name = str(path)
        self._con: duckdb.DuckDBPyConnection | None = None
        self._materialization: str | None = None
        self._fence = 0
        self._tables: dict[str, dict[str, ColumnType]] = {}
        self._keyed: dict[str, bool] = {}
        self._documents: dict[str, str] = {}
        self._fresh: set[str] = set()
        self._stage_dir: Path | None = None
        self._turn = threading.RLock()
        """Held by each commit and each ledger write: one transaction at a time on the file."""

    # -- lifecycle ---------------------------------------------------------------------------

    def open(self, materialization: str) -> Recovered:
        if self._con is None:
            self._con = connect(self.path)
        con = self.con
        if self.memory_limit is not None:
            con.execute(f"SET memory_limit = {literal(self.memory_limit)}")
        try:
            con.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(self.schema)}")
        except duckdb.Error as exc:  # a system schema the config let through: one sentence
            raise DestinationError(
                f"{self.path}: cannot use schema {self.schema!r} ({first_line(exc)})"
            ) from None
        con.execute(
            f"CREATE TABLE IF NOT EXISTS {self._q(CHECKPOINTS)} ("
            "materialization VARCHAR PRIMARY KEY, fence BIGINT NOT NULL, "
            "checkpoint VARCHAR NOT NULL, committed_at TIMESTAMPTZ, "
            "transactions BIGINT NOT NULL)"
        )
        self._create_ledger()
        try:
            con.begin()
            con.execute(
                f"INSERT INTO {self._q(CHECKPOINTS)} VALUES (?, 0, '{{}}', NULL, 0) "
                "ON CONFLICT DO NOTHING",
                [materialization],
            )
            row = con.execute(
                f"UPDATE {self._q(CHECKPOINTS)} SET fence = fence + 1 WHERE materialization = ? "
                "RETURNING fence, checkpoint, epoch_us(committed_at), transactions",
                [materialization],
            ).fetchone()
            others = con.execute(
                f"SELECT materialization, checkpoint FROM {self._q(CHECKPOINTS)} "
                "WHERE materialization <> ?",
                [materialization],
            ).fetchall()
            con.commit()
        except duckdb.TransactionException as exc:
            self._rollback()
            raise FencedError(
                f"materialization {materialization!r} in {self.path} is being opened by "
                f"another process ({exc})"
            ) from None
        assert row is not None
        self._materialization = materialization
        self._fence = int(row[0])
        self._stage_dir = Path(tempfile.mkdtemp(prefix="afterload-stage-"))
        return Recovered(
            checkpoint=Checkpoint.from_json(row[1]),
            fence=self._fence,
            committed_at=from_epoch_us(row[2]),
            transactions=int(row[3]),
            others=others_tables(others),
        )

    def close(self) -> None:
        with self._turn:
            self._close()

    def surveyor(self) -> Surveyor | None:
        """Surveys a binding's transactions (DuckDB reads JSON lines itself)."""
        return Surveyor() if self.survey else None

    def _close(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None
        if self._stage_dir is not None:
            shutil.rmtree(self._stage_dir, ignore_errors=True)
            self._stage_dir = None

    def _rollback(self) -> None:
        with contextlib.suppress(duckdb.Error):
            self.con.rollback()
        self._tables.clear()  # DDL rolled back too: read the catalog again
        self._keyed.clear()
        self._documents.clear()

    # -- tables ------------------------------------------------------------------------------

    # -- commits -----------------------------------------------------------------------------

    def commit(
        self, writes: list[TableWrite], checkpoint: Checkpoint, published_at: datetime
    ) -> None:
        with self._turn:
            self._commit(writes, checkpoint, published_at)

    def _commit(
        self, writes: list[TableWrite], checkpoint: Checkpoint, published_at: datetime
    ) -> None:
        con = self.con
        stamp = published_at.astimezone(UTC).isoformat()
        try:
            con.begin()
            for index, write in enumerate(writes):
                self._write(write, stamp, index)
            row = con.execute(
                f"UPDATE {self._q(CHECKPOINTS)} SET checkpoint = ?, "
                "committed_at = ?::TIMESTAMPTZ, transactions = transactions + 1 "
                "WHERE materialization = ? AND fence = ? RETURNING fence",
                [checkpoint.to_json(), stamp, self._materialization, self._fence],
            ).fetchall()
            if len(row) != 1:
                raise FencedError(self._fenced_message())
            con.commit()
        except FencedError:
            self._rollback()
            raise
        except duckdb.TransactionException as exc:
            self._rollback()
            if "conflict" in str(exc).lower():
                raise FencedError(self._fenced_message()) from None
            raise DestinationError(f"{self.path}: the commit failed: {exc}") from None
        except duckdb.Error as exc:
            self._rollback()
            raise DestinationError(f"{self.path}: the commit failed: {first_line(exc)}") from None
        finally:
            self._clear_stage(writes)

    def _fenced_message(self) -> str:
        return (
            f"materialization {self._materialization!r} in {self.path} was opened by another "
            "process after this one; this one stops without committing"
        )
