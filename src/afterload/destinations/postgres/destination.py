"""The PostgreSQL destination: connecting and retrying, the schema prepared and the fence
raised at open, commits redone after a lost connection; the lock and the fence check
(``fence.py``), reads, catalog, writer and ledger mixed in."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, TypeVar

import psycopg
from psycopg import errors as pgerrors

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
from afterload.destinations.postgres.catalog import Table
from afterload.destinations.postgres.connect import (
    LOST_STATES,
    Connection,
    ConnectSettings,
    Cursor,
    Lost,
    backend_pid,
    sql_literal,
)
from afterload.destinations.postgres.dialect import COLUMN_NAMES
from afterload.destinations.postgres.fence import Fence
from afterload.destinations.postgres.ledger import PostgresLedger
from afterload.destinations.postgres.locks import LOCK_CLASS
from afterload.destinations.postgres.reads import Reads
from afterload.destinations.sql import CHECKPOINTS, first_line, quote

if TYPE_CHECKING:
    from afterload.destinations.postgres.config import PostgresConfig

log = logging.getLogger("afterload.postgres")


T = TypeVar("T")


class PostgresDestination(Fence, Reads, PostgresLedger):
    """Implements :class:`afterload.destinations.base.Destination` on a PostgreSQL schema."""

    stores_nul = False  # neither TEXT nor JSONB can hold U+0000
    wide_ints: int | None = None  # NUMERIC holds any integer
    empty_names = True  # mapped to a hashed name, like any name PostgreSQL cannot hold
    far_offsets = False  # offsets up to 15:59 only (encode.py)
    column_names: ColumnNames | None = COLUMN_NAMES  # shortened, hashed, system names refused
    optional_document = False

    def __init__(
        self,
        settings: ConnectSettings,
        *,
        attempts: int = 6,
        backoff: float = 0.5,
        max_backoff: float = 8.0,
        lock_wait: float = 5.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self.schema = settings.schema
        self.name = f"PostgreSQL {settings.where}, schema {settings.schema!r}"
        self.attempts = max(1, attempts)
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.lock_wait = lock_wait
        self._sleep = sleep
        self._conn: Connection | None = None
        self._old_pids: set[int] = set()
        self._materialization: str | None = None
        self._fence = 0
        self._transactions = 0
        self._tables: dict[str, Table] = {}
        self._merge_only: set[str] = set()
        """Tables whose keys met existing rows: skip the attempt to COPY straight in."""
        self._turn = threading.RLock()
        """Held by each commit and each ledger write: one transaction at a time per session."""
        self.reconnects = 0
        """How many times a lost connection was re-established (for tests and logs)."""
        self.exclusive = True
        """Take the advisory lock that refuses a second process. The Flow driver turns it
        off: its runtime starts a shard's successor before the old one is surely gone, and
        the fence alone decides (the newer process commits, the older is fenced off)."""

    @classmethod
    def from_config(cls, config: PostgresConfig) -> PostgresDestination:
        return cls(ConnectSettings.from_config(config))

    def __repr__(self) -> str:
        return f"PostgresDestination({self.name})"

    # -- retries -----------------------------------------------------------------------------

    def _retrying(self, what: str, attempt: Callable[[], T]) -> T:
        """Run ``attempt``, reconnecting after a lost connection, a bounded number of times."""
        delay = self.backoff
        for number in range(1, self.attempts + 1):
            try:
                return attempt()
            except Lost as lost:
                self._drop()
                if number == self.attempts:
                    raise DestinationError(
                        f"{self.name}: {what} failed {self.attempts} times because the "
                        f"connection was lost or could not be made; last: {lost.reason}"
                    ) from None
                log.warning(
                    "%s: %s: %s; trying again in %.1fs (attempt %d of %d)",
                    self.name,
                    what,
                    lost.reason,
                    delay,
                    number + 1,
                    self.attempts,
                )
                self._sleep(delay)
                delay = min(delay * 2, self.max_backoff)
        raise AssertionError("unreachable")

    def _drop(self) -> None:
        """Forget a broken connection; its transaction is rolled back by the server."""
        conn, self._conn = self._conn, None
        self._tables.clear()
        if conn is not None:
            pid = backend_pid(conn)
            if pid:
                self._old_pids.add(pid)
            with contextlib.suppress(psycopg.Error):
                conn.close()

    def _is_lost(self, exc: BaseException) -> bool:
        if isinstance(exc, LOST_STATES):
            return True
        if not isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
            return False
        conn = self._conn
        return conn is None or conn.closed or conn.broken

    def _failed(self, exc: psycopg.Error, what: str) -> Exception:
        """Turn a psycopg error into Lost (retry) or one clear DestinationError."""
        if self._is_lost(exc):
            return Lost(self.settings.scrub(first_line(exc)))
        self._rollback()
        reason = self.settings.scrub(first_line(exc))
        if isinstance(exc, pgerrors.InsufficientPrivilege):
            return DestinationError(
                f"user {self.settings.user!r} lacks a permission in schema {self.schema!r} of "
                f"{self._server_db} ({what}): {reason}"
            )
        return DestinationError(f"{self.name}: {what} failed: {reason}")

    def _rollback(self) -> None:
        self._tables.clear()  # DDL is rolled back too: read the catalog again
        conn = self._conn
        if conn is not None and not conn.closed:
            try:
                conn.rollback()
            except psycopg.Error:
                self._drop()

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def conn(self) -> Connection:
        if self._conn is None:
            raise DestinationError(f"{self.name} is not open")
        return self._conn

    def open(self, materialization: str) -> Recovered:
        self._materialization = materialization
        try:
            return self._retrying("opening the materialization", self._open_once)
        except BaseException:
            self.close()  # no session (and no lock) left behind by a failed open
            raise

    def _open_once(self) -> Recovered:
        self._drop()
        self._conn = self.settings.connect(autocommit=False)
        conn = self._conn
        try:
            with conn.cursor() as cur:
                self._prepare_schema(cur)
                conn.commit()
                self._take_lock(cur, wait=self.lock_wait)
                cur.execute(
                    f"INSERT INTO {self._q(CHECKPOINTS)} VALUES (%s, 0, '{{}}', NULL, 0) "
                    "ON CONFLICT DO NOTHING",
                    [self._materialization],
                )
                row = cur.execute(
                    f"UPDATE {self._q(CHECKPOINTS)} SET fence = fence + 1 "
                    "WHERE materialization = %s "
                    "RETURNING fence, checkpoint::text, committed_at, transactions",
                    [self._materialization],
                ).fetchone()
                others = cur.execute(
                    f"SELECT materialization, checkpoint::text FROM {self._q(CHECKPOINTS)} "
                    "WHERE materialization <> %s",
                    [self._materialization],
                ).fetchall()
                conn.commit()
        except psycopg.Error as exc:
            raise self._failed(exc, "opening the materialization") from None
        assert row is not None
        self._fence = int(row[0])
        self._transactions = int(row[3])
        return Recovered(
            checkpoint=Checkpoint.from_json(row[1]),
            fence=self._fence,
            committed_at=row[2],
            transactions=self._transactions,
            others=others_tables(others),
        )

    def _prepare_schema(self, cur: Cursor) -> None:
        """Create the schema and the checkpoint table if missing, one process at a time."""
        cur.execute(
            "SELECT pg_advisory_xact_lock(%s, hashtext(%s))", [LOCK_CLASS, "schema " + self.schema]
        )
        exists = cur.execute(
            "SELECT 1 FROM pg_namespace WHERE nspname = %s", [self.schema]
        ).fetchone()
        if exists is None:
            try:
                cur.execute(f"CREATE SCHEMA {quote(self.schema)}")
            except pgerrors.InsufficientPrivilege:
                self._rollback()
                raise DestinationError(
                    f"user {self.settings.user!r} may not create schema {self.schema!r} in "
                    f"{self._server_db}; create it or grant CREATE on the database"
                ) from None
        if cur.execute("SELECT to_regclass(%s)", [self._q(CHECKPOINTS)]).fetchone() == (None,):
            try:
                cur.execute(
                    f"CREATE TABLE {self._q(CHECKPOINTS)} ("
                    "materialization TEXT PRIMARY KEY, fence BIGINT NOT NULL, "
                    "checkpoint JSONB NOT NULL, committed_at TIMESTAMPTZ, "
                    "transactions BIGINT NOT NULL)"
                )
            except pgerrors.InsufficientPrivilege:
                self._rollback()
                raise DestinationError(
                    f"user {self.settings.user!r} may not create tables in schema "
                    f"{self.schema!r} of {self._server_db}; grant CREATE on the schema"
                ) from None
            comment = (
                "afterload: the committed checkpoint (source offsets) and fence of each "
                "materialization; written in the same transaction as the data"
            )
            cur.execute(
                f"COMMENT ON TABLE {self._q(CHECKPOINTS)} IS {sql_literal(cur.connection, comment)}"
            )
        self._create_ledger(cur)

    @property
    def _server_db(self) -> str:
        s = self.settings
        return f"database {s.database!r} on {s.host}:{s.port}"

    def close(self) -> None:
        with self._turn:
            self._close()

    def _close(self) -> None:
        conn, self._conn = self._conn, None
        self._tables.clear()
        self._materialization = None  # a commit after close must not reconnect
        if conn is not None:
            with contextlib.suppress(psycopg.Error):
                conn.close()  # ends the session: the lock goes with it

    # -- tables ------------------------------------------------------------------------------

    def columns(self, table: str) -> dict[str, ColumnType] | None:
        def attempt() -> dict[str, ColumnType] | None:
            self._attach(None)
            try:
                with self.conn.cursor() as cur:
                    found = self._describe(cur, table)
                self.conn.commit()
            except psycopg.Error as exc:
                raise self._failed(exc, f"reading the columns of {table}") from None
            if found is None:
                return None
            return {c.prop: c.type for c in found.columns.values()}

        return self._retrying(f"reading the columns of {table}", attempt)

    # -- commits -----------------------------------------------------------------------------

    def commit(
        self, writes: list[TableWrite], checkpoint: Checkpoint, published_at: datetime
    ) -> None:
        stamp = published_at.astimezone(UTC).isoformat()
        text = checkpoint.to_json()

        def attempt() -> None:
            if self._attach(checkpoint):
                return
            self._commit_once(writes, text, stamp)

        with self._turn:
            self._retrying("the commit", attempt)
            self._transactions += 1

    def _commit_once(self, writes: list[TableWrite], checkpoint: str, stamp: str) -> None:
        conn = self.conn
        try:
            with conn.cursor() as cur:
                row = cur.execute(
                    f"SELECT fence FROM {self._q(CHECKPOINTS)} WHERE materialization = %s "
                    "FOR UPDATE",
                    [self._materialization],
                ).fetchone()
                if row is None or int(row[0]) != self._fence:
                    raise FencedError(self._fenced_message())
                for write in writes:
                    self._write(cur, write, stamp)
                done = cur.execute(
                    f"UPDATE {self._q(CHECKPOINTS)} SET checkpoint = %s::jsonb, "
                    "committed_at = %s::timestamptz, transactions = transactions + 1 "
                    "WHERE materialization = %s AND fence = %s RETURNING fence",
                    [checkpoint, stamp, self._materialization, self._fence],
                ).fetchall()
                if len(done) != 1:
                    raise FencedError(self._fenced_message())
            conn.commit()
        except (FencedError, DestinationError):
            self._rollback()
            raise
        except psycopg.Error as exc:
            raise self._failed(exc, "the commit") from None
