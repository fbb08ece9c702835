"""The run ledger in PostgreSQL: ``_afterload_runs`` beside the data, written in the
process's turn on its own session (never interleaved with a commit's transaction)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

import psycopg
from psycopg import errors as pgerrors

from afterload.core.checkpoint import Checkpoint
from afterload.destinations.base import DestinationError
from afterload.destinations.ledger import (
    RUNS,
    LedgerEntry,
    create_sql,
    finish_sql,
    from_row,
    insert_sql,
    select_sql,
)
from afterload.destinations.postgres.connect import Connection, ConnectSettings, Cursor
from afterload.destinations.sql import quote

T = TypeVar("T")


def read_ledger(
    cur: Cursor, schema: str, materialization: str, *, last: int | None, open_only: bool
) -> list[LedgerEntry]:
    """The ledger's rows, newest first; none when the table does not exist yet."""
    table = f"{quote(schema)}.{quote(RUNS)}"
    if cur.execute("SELECT to_regclass(%s)", [table]).fetchone() == (None,):
        return []
    rows = cur.execute(
        select_sql(schema, "%s", last=last, open_only=open_only), [materialization]
    ).fetchall()
    return [from_row(tuple(row)) for row in rows]


class PostgresLedger:
    """Implements :class:`afterload.destinations.ledger.RunLedger` for PostgreSQL."""

    schema: str
    _turn: threading.RLock

    # Provided by the destination.
    if TYPE_CHECKING:

        @property
        def conn(self) -> Connection: ...

    _attach: Callable[[Checkpoint | None], bool]
    _retrying: Callable[[str, Callable[[], Any]], Any]
    _failed: Callable[[psycopg.Error, str], Exception]
    _rollback: Callable[[], None]
    settings: ConnectSettings
    if TYPE_CHECKING:

        @property
        def _server_db(self) -> str: ...

    def _create_ledger(self, cur: Cursor) -> None:
        """Create ``_afterload_runs`` if missing (a role that may not create tables is fine
        when the table exists already)."""
        table = f"{quote(self.schema)}.{quote(RUNS)}"
        if cur.execute("SELECT to_regclass(%s)", [table]).fetchone() != (None,):
            return
        try:
            cur.execute(create_sql(self.schema))
        except pgerrors.InsufficientPrivilege:
            self._rollback()
            raise DestinationError(
                f"user {self.settings.user!r} may not create tables in schema "
                f"{self.schema!r} of {self._server_db}; grant CREATE on the schema"
            ) from None

    def _in_turn(self, what: str, work: Callable[[Cursor], T]) -> T:
        def attempt() -> T:
            self._attach(None)
            conn = self.conn
            try:
                with conn.cursor() as cur:
                    result = work(cur)
                conn.commit()
            except psycopg.Error as exc:
                raise self._failed(exc, what) from None
            return result

        with self._turn:
            result: T = self._retrying(what, attempt)
            return result

    def record_run(self, entry: LedgerEntry) -> None:
        sql = insert_sql(self.schema, "%s")
        self._in_turn("recording a run", lambda cur: cur.execute(sql, entry.values()))

    def finish_run(self, entry: str, status: str, finished_at: datetime) -> None:
        sql = finish_sql(self.schema, "%s")
        self._in_turn(
            "recording a run's end", lambda cur: cur.execute(sql, [status, finished_at, entry])
        )

    def read_runs(
        self, materialization: str, *, last: int | None = None, open_only: bool = False
    ) -> list[LedgerEntry]:
        return self._in_turn(
            "reading the run ledger",
            lambda cur: read_ledger(
                cur, self.schema, materialization, last=last, open_only=open_only
            ),
        )
