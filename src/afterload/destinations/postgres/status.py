"""Read-only access to the committed state, for ``afterload status`` and ``check``."""

from __future__ import annotations

from typing import TYPE_CHECKING

import psycopg

from afterload.core.checkpoint import BindingCheckpoint, Checkpoint
from afterload.destinations.base import (
    DestinationError,
    Recovered,
    others_tables,
)
from afterload.destinations.ledger import LedgerEntry
from afterload.destinations.postgres.connect import ConnectSettings, Lost
from afterload.destinations.postgres.dialect import pg_identifier
from afterload.destinations.postgres.ledger import read_ledger
from afterload.destinations.sql import CHECKPOINTS, first_line, quote

if TYPE_CHECKING:
    from afterload.destinations.postgres.config import PostgresConfig


class PostgresStatus:
    """Implements :class:`afterload.destinations.base.StatusReader`: read-only, no lock."""

    def __init__(self, settings: ConnectSettings) -> None:
        self.settings = settings
        self.schema = settings.schema
        self.name = f"PostgreSQL {settings.where}, schema {settings.schema!r}"
        try:
            self.conn = settings.connect(autocommit=True)
        except Lost as lost:
            raise DestinationError(lost.reason) from None

    @classmethod
    def from_config(cls, config: PostgresConfig) -> PostgresStatus:
        return cls(ConnectSettings.from_config(config))

    def _q(self, table: str) -> str:
        return f"{quote(self.schema)}.{quote(pg_identifier(table))}"

    def _exists(self, table: str) -> bool:
        row = self.conn.execute("SELECT to_regclass(%s)", [self._q(table)]).fetchone()
        return row is not None and row[0] is not None

    def read_checkpoint(self, materialization: str) -> Recovered | None:
        try:
            if not self._exists(CHECKPOINTS):
                return None
            row = self.conn.execute(
                f"SELECT fence, checkpoint::text, committed_at, transactions "
                f"FROM {self._q(CHECKPOINTS)} WHERE materialization = %s",
                [materialization],
            ).fetchone()
        except psycopg.Error as exc:
            raise DestinationError(f"{self.name}: {self.settings.scrub(first_line(exc))}") from None
        if row is None:
            return None
        return Recovered(
            checkpoint=Checkpoint.from_json(row[1]),
            fence=int(row[0]),
            committed_at=row[2],
            transactions=int(row[3]),
        )

    def other_tables(self, materialization: str) -> dict[str, dict[str, BindingCheckpoint]]:
        try:
            if not self._exists(CHECKPOINTS):
                return {}
            rows = self.conn.execute(
                f"SELECT materialization, checkpoint::text FROM {self._q(CHECKPOINTS)} "
                "WHERE materialization <> %s",
                [materialization],
            ).fetchall()
        except psycopg.Error as exc:
            raise DestinationError(f"{self.name}: {self.settings.scrub(first_line(exc))}") from None
        return others_tables(rows)

    def row_count(self, table: str) -> int | None:
        try:
            if not self._exists(table):
                return None
            row = self.conn.execute(f"SELECT count(*) FROM {self._q(table)}").fetchone()
        except psycopg.Error as exc:
            raise DestinationError(f"{self.name}: {self.settings.scrub(first_line(exc))}") from None
        return None if row is None else int(row[0])

    def read_runs(
        self, materialization: str, *, last: int | None = None, open_only: bool = False
    ) -> list[LedgerEntry]:
        """The run ledger, newest first (see :mod:`afterload.destinations.ledger`)."""
        try:
            with self.conn.cursor() as cur:
                return read_ledger(
                    cur, self.schema, materialization, last=last, open_only=open_only
                )
        except psycopg.Error as exc:
            raise DestinationError(f"{self.name}: {self.settings.scrub(first_line(exc))}") from None

    def close(self) -> None:
        self.conn.close()
