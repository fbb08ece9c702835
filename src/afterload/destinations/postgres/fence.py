"""Owning a materialization: the session advisory lock that refuses a second process, and
after a lost connection the lock taken again and the fence checked, so a process whose place
was taken never commits. Kept apart from the destination's connecting and committing."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

import psycopg

from afterload.core.checkpoint import Checkpoint
from afterload.destinations.base import DestinationError, FencedError, LockedError
from afterload.destinations.postgres.connect import Connection, ConnectSettings, Cursor
from afterload.destinations.postgres.locks import LOCK_CLASS, lock_holder
from afterload.destinations.sql import CHECKPOINTS

log = logging.getLogger("afterload.postgres")


class Fence:
    """The lock and the fence of :class:`PostgresDestination`; its state lives there."""

    name: str
    schema: str
    settings: ConnectSettings
    lock_wait: float
    exclusive: bool
    reconnects: int
    _conn: Connection | None
    _materialization: str | None
    _old_pids: set[int]
    _fence: int
    _transactions: int

    # Provided by the destination and its catalog.
    if TYPE_CHECKING:

        @property
        def _server_db(self) -> str: ...

        def _q(self, table: str) -> str: ...

        def _failed(self, exc: psycopg.Error, what: str) -> Exception: ...

    @property
    def _lock_key(self) -> str:
        return f"{self.schema}.{self._materialization}"

    def _take_lock(self, cur: Cursor, *, wait: float) -> None:
        """The session lock that refuses a second process; waits a little for a dying one."""
        if not self.exclusive:
            return
        deadline = time.monotonic() + wait
        while True:
            row = cur.execute(
                "SELECT pg_try_advisory_lock(%s, hashtext(%s))", [LOCK_CLASS, self._lock_key]
            ).fetchone()
            cur.connection.commit()
            if row is not None and row[0]:
                return
            holder = lock_holder(cur, self._lock_key)
            if holder is not None and holder[0] in self._old_pids:
                # Our own session from before the connection was lost, not yet noticed dead.
                cur.execute("SELECT pg_terminate_backend(%s)", [holder[0]])
                cur.connection.commit()
            elif time.monotonic() >= deadline:
                who = (
                    f"backend pid {holder[0]}, client {holder[1] or 'local'}, "
                    f"application {holder[2] or '?'}"
                    if holder is not None
                    else "unknown session"
                )
                raise LockedError(
                    f"materialization {self._materialization!r} in schema {self.schema!r} of "
                    f"{self._server_db} is held by another afterload process ({who}); stop it "
                    "first or use another name or schema"
                )
            time.sleep(0.1)

    def _attach(self, pending: Checkpoint | None) -> bool:
        """Make sure we are connected and still own the materialization.

        After a lost connection: reconnect, take the lock again, and check the fence. True if
        the connection died after the server committed ``pending`` (nothing left to do).
        """
        if self._conn is not None:
            return False
        if self._materialization is None:
            raise DestinationError(f"{self.name} is not open")
        self._conn = self.settings.connect(autocommit=False)
        self.reconnects += 1
        conn = self._conn
        try:
            with conn.cursor() as cur:
                try:
                    self._take_lock(cur, wait=self.lock_wait)
                except LockedError:
                    raise FencedError(self._taken_over_message()) from None
                row = cur.execute(
                    f"SELECT fence, checkpoint::text, transactions FROM {self._q(CHECKPOINTS)} "
                    "WHERE materialization = %s",
                    [self._materialization],
                ).fetchone()
                conn.commit()
        except psycopg.Error as exc:
            raise self._failed(exc, "reconnecting") from None
        if row is None or int(row[0]) != self._fence:
            raise FencedError(self._taken_over_message())
        transactions = int(row[2])
        if transactions == self._transactions:
            log.info("%s: reconnected; the interrupted commit is done again", self.name)
            return False
        if (
            pending is not None
            and transactions == self._transactions + 1
            # A JSONB round trip may change the text but not the value: compare values.
            and Checkpoint.from_json(row[1]) == pending
        ):
            log.info("%s: reconnected; the interrupted commit had been committed", self.name)
            return True
        raise FencedError(self._taken_over_message())

    def _taken_over_message(self) -> str:
        return (
            f"materialization {self._materialization!r} in schema {self.schema!r} of "
            f"{self._server_db} was taken over by another process while the connection was "
            "lost; this one stops without committing"
        )

    def _fenced_message(self) -> str:
        return (
            f"materialization {self._materialization!r} in schema {self.schema!r} of "
            f"{self._server_db} was opened by another process after this one; this one stops "
            "without committing"
        )
