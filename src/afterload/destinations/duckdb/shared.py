"""DuckDB shared with other processes: the file is held only while afterload commits.

DuckDB lets one process open a file read-write, and a second ``connect`` fails at once
instead of waiting. A loader that kept its connection for the whole run would lock out the
very readers data is landed for: the ``duckdb`` CLI, a notebook, dbt-duckdb, ``afterload
status``. So this destination opens the file for each commit (and for the catalog reads at
start) and closes it right after; between commits anyone may open it.

Taking the file back for a commit goes in two steps. First the *turn*
(:class:`~afterload.destinations.duckdb.turns.DuckDBTurns`): a dbt run started by afterload
holds it for its whole life, so a commit waits while dbt builds, then dbt waits for the commit.
Then DuckDB's own lock: a reader that holds the file (a notebook, the CLI) is waited for
politely, with one log line naming it. Exactly once is unchanged: the rows and the checkpoint
still commit in one DuckDB transaction, guarded by the fence raised at open.

During a backfill (full transactions, more waiting) the file stays held from one commit to
the next; the core lets it go (:meth:`SharedDuckDBDestination.release`) after a commit that
caught up.

A second ``afterload run`` on the same file is still refused at open (an owner lock held for
the life of the run names its pid), so releasing the file never invites a second writer.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Protocol

import duckdb

from afterload.core.checkpoint import Checkpoint
from afterload.core.schema import ColumnType
from afterload.destinations.base import LockedError, Recovered, TableWrite
from afterload.destinations.duckdb.connect import connect, literal
from afterload.destinations.duckdb.destination import DuckDBDestination

log = logging.getLogger("afterload.duckdb")

#: Waiting for a reader to let the file go: first retry after this, doubling up to the cap.
FIRST_WAIT, MAX_WAIT = 0.02, 0.5
LEDGER_WAIT = 30.0
"""Seconds a ledger row waits for a file another connection holds before it is given up."""
_HOLDER = re.compile(r"held in (.+?) \(PID (\d+)\)")


def holder_of(message: str) -> str:
    """Who holds the file, from DuckDB's lock error (``… is held in /usr/bin/python (PID 7)``)."""
    found = _HOLDER.search(message)
    if found is None:
        return "another process"
    return f"pid {found.group(2)} ({Path(found.group(1)).name})"


class TurnLock(Protocol):
    """Whose turn it is to open the file, between processes that agree to ask (afterload's
    commits and the dbt runs it starts). Defined here so destinations need no trigger code."""

    def acquire(self, timeout: float | None = None) -> int:
        """Block until it is our turn; the descriptor to close to end it."""
        ...

    def busy(self) -> bool:
        """Whether another party holds the turn now."""
        ...


class OwnerLock:
    """One ``afterload run`` per DuckDB file: a flock held for the whole run, naming its pid."""

    def __init__(self, database: Path) -> None:
        self.path = database.with_name(database.name + ".afterload-run")
        self._fd: int | None = None

    def take(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
            os.close(fd)
            who = f" (pid {text})" if text.isdigit() else ""
            database = self.path.with_name(self.path.name.removesuffix(".afterload-run"))
            raise LockedError(
                f"another afterload process{who} holds {database}; "
                "stop it or use another database file"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class SharedDuckDBDestination(DuckDBDestination):
    """A :class:`DuckDBDestination` that holds the file only while it commits."""

    def __init__(
        self,
        path: Path,
        schema: str = "main",
        *,
        memory_limit: str | None = None,
        turns: TurnLock | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(path, schema, memory_limit=memory_limit)
        self.turns = turns
        self.owner = OwnerLock(path)
        self._sleep = sleep
        self._turn_fd: int | None = None
        self.waits = 0
        """How many times a commit found the file held by another process (for tests)."""

    @contextlib.contextmanager
    def held(self, *, keep: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """The file open read-write for the block: the turn first, then DuckDB's own lock.

        Let go after the block unless it was held before or ``keep`` (then :meth:`release`).
        """
        before = self._con is not None
        con = self._hold()
        try:
            yield con
        except BaseException:
            if not before:
                self.release()
            raise
        if not (before or keep):
            self.release()

    def _hold(self) -> duckdb.DuckDBPyConnection:
        if self._con is not None:
            return self._con
        fd = None
        if self.turns is not None:
            if self.turns.busy():
                log.info("%s: a dbt run holds the file; the commit waits for it to end", self.path)
            fd = self.turns.acquire()
        try:
            con = self._connect_politely()
            if self.memory_limit is not None:
                con.execute(f"SET memory_limit = {literal(self.memory_limit)}")
        except BaseException:
            if fd is not None:
                os.close(fd)
            raise
        self._con, self._turn_fd = con, fd
        return con

    def release(self) -> None:
        """Let the file go (readers, dbt may open it) until the next commit takes it back.
        In the turn: the core may let go from its own thread while a ledger write (on the
        triggers' thread) uses the connection."""
        with self._turn:
            if self._con is not None:
                with contextlib.suppress(duckdb.Error):
                    self._con.close()
                self._con = None
            if self._turn_fd is not None:
                os.close(self._turn_fd)
                self._turn_fd = None

    def _connect_politely(
        self, who: str = "the commit", give_up_after: float | None = None
    ) -> duckdb.DuckDBPyConnection:
        """Connect; while another connection holds the file, wait (one log line per wait),
        for ever or, with ``give_up_after`` seconds, until LockedError."""
        delay = FIRST_WAIT
        said = False
        deadline = None if give_up_after is None else time.monotonic() + give_up_after
        while True:
            try:
                return connect(self.path)
            except LockedError:
                if deadline is not None and time.monotonic() >= deadline:
                    raise
                message = self._lock_message()
            if not said:
                log.info("%s is held by %s; %s waits until it lets go", self.path, message, who)
                said = True
                self.waits += 1
            self._sleep(delay)
            delay = min(MAX_WAIT, delay * 2)

    def _ledger_connect(self) -> duckdb.DuckDBPyConnection:
        """While the file is released, a reader or a dbt run may hold it when a ledger row
        is written (a run's decision comes as dbt starts): wait for it, a bounded time, on
        the triggers' worker thread — the row is lost only if it is held longer."""
        return self._connect_politely("a run ledger row", give_up_after=LEDGER_WAIT)

    def _lock_message(self) -> str:
        try:
            duckdb.connect(str(self.path)).close()
        except duckdb.IOException as exc:
            return holder_of(str(exc))
        except duckdb.ConnectionException:
            return "a connection of this process"
        return "another process"

    # -- the Destination interface -----------------------------------------------------------

    def open(self, materialization: str) -> Recovered:
        self.owner.take()
        try:
            with self.held():
                return super().open(materialization)
        except BaseException:
            self.owner.release()
            raise

    def columns(self, table: str) -> dict[str, ColumnType] | None:
        cached = self._tables.get(table)
        if cached is not None:
            return dict(cached)
        with self.held():
            return super().columns(table)

    def commit(
        self, writes: list[TableWrite], checkpoint: Checkpoint, published_at: datetime
    ) -> None:
        """Commit, and keep the file until :meth:`release`: the core lets it go once caught
        up, so a backfill's commits do not each pay for opening it (and checkpointing)."""
        with self.held(keep=True):
            super().commit(writes, checkpoint, published_at)

    def close(self) -> None:
        try:
            self.release()
            super().close()
        finally:
            self.owner.release()
