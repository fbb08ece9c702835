"""The materializer: commits a driver's transactions with its checkpoint, then tells listeners.

Source-agnostic on purpose: a driver (NDJSON files, the Flow protocol, a Python program)
brings reduced transactions, the table shape of each binding, and an opaque position
(:class:`~afterload.core.checkpoint.Checkpoint`); the materializer turns them into table
writes, commits rows and checkpoint atomically through the destination, one commit in flight
at a time, and calls its listeners (the triggers, a progress display) after each commit.
It opens no file, handles no signal and prints nothing: it logs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

from afterload.clock import Clock, SystemClock
from afterload.core.checkpoint import Checkpoint
from afterload.core.committer import Committer
from afterload.core.schema import TableShape
from afterload.core.transaction import Transaction
from afterload.destinations.base import Destination, Recovered, TableWrite

log = logging.getLogger("afterload.materializer")


@dataclass(frozen=True, slots=True)
class Commit:
    """What a listener hears after a commit stood."""

    number: int
    """1 for the first transaction this materializer committed."""
    documents: int
    """Documents stored (0: nothing for a trigger to do)."""
    rows: int
    full: bool
    seconds: float
    published_at: datetime | None = None
    """The commit's ``flow_published_at`` (a dbt Core fire's ``vars`` may name it)."""


CommitListener = Callable[[Commit], None]


@dataclass(frozen=True, slots=True)
class _Pending:
    txn: Transaction
    writes: list[TableWrite]
    started: float
    quiet: bool
    published: datetime | None = None


class Materializer:
    """Commits transactions in order into one destination, for one materialization."""

    def __init__(
        self,
        destination: Destination,
        name: str,
        *,
        clock: Clock | None = None,
        listeners: Sequence[CommitListener] = (),
    ) -> None:
        self.destination = destination
        self.name = name
        self.clock = clock or SystemClock()
        self.listeners = list(listeners)
        self.transactions = 0
        self.documents = 0
        self.rows = 0
        self.last_commit_at: datetime | None = None
        self.resumed_from = 0
        """Transactions committed before this run (by earlier processes), known after open."""
        self._committer: Committer[_Pending] = Committer(self._committed)

    def open(self) -> Recovered:
        """Open the destination (raising its fence) and return where to resume from."""
        recovered = self.destination.open(self.name)
        self.resumed_from = recovered.transactions
        if recovered.committed_at is not None:
            log.info(
                "%s: resuming after transaction %d committed at %s",
                self.name,
                recovered.transactions,
                recovered.committed_at.isoformat(timespec="seconds"),
            )
        return recovered

    def commit(
        self,
        txn: Transaction,
        checkpoint: Checkpoint,
        shapes: Mapping[str, TableShape],
        *,
        overlap: bool = False,
        quiet: bool = False,
    ) -> None:
        """Commit ``txn`` with ``checkpoint``; ``shapes`` holds each binding's table shape.

        With ``overlap``, return once the commit is handed to the commit thread (see
        :mod:`.committer`); ``quiet`` commits only the checkpoint's news, unannounced.
        """
        self._committer.settle()
        started = time.monotonic()
        writes = []
        for binding, changes in txn.changes.items():
            if not changes.documents:
                continue
            shape = shapes[binding].snapshot()
            writes.append(TableWrite(binding, binding, shape, changes.upserts(), changes.deletes()))
        published = self.clock.wall()
        self.last_commit_at = published
        pending = _Pending(txn, writes, started, quiet, published)

        release = None if txn.full else getattr(self.destination, "release", None)

        def store() -> None:
            self.destination.commit(writes, checkpoint, published)
            if release is not None:
                release()  # caught up: a destination shared with readers lets them in now

        self._committer.run(store, pending, overlap=overlap)

    @property
    def busy(self) -> bool:
        """A commit is in flight (handed to the commit thread, perhaps waiting for the file)."""
        return self._committer.busy

    def poll(self) -> None:
        """Settle a commit in flight that already finished, so listeners hear of it soon."""
        self._committer.poll()

    def settle(self) -> None:
        """Wait for the commit in flight, if any; its error is raised here."""
        self._committer.settle()

    def settle_within(self, seconds: float) -> bool:
        """As :meth:`settle`, but give up after ``seconds`` (False: still in flight)."""
        return self._committer.settle_within(seconds)

    @contextmanager
    def draining(self) -> Iterator[None]:
        """No commit left in flight when the block ends, whichever way it ends."""
        with self._committer.draining():
            yield

    def close(self) -> None:
        """Let a commit in flight end (the destination is closed by its owner)."""
        self._committer.close()

    def _committed(self, pending: _Pending) -> None:
        if pending.quiet:
            return
        txn, writes = pending.txn, pending.writes
        stored = txn.stored
        rows = sum(len(w.upserts) + len(w.deletes) for w in writes)
        self.transactions += 1
        self.documents += stored
        self.rows += rows
        seconds = time.monotonic() - pending.started
        log.info(
            "committed transaction %d: %d documents, %d rows written, %.2fs%s",
            self.transactions,
            stored,
            rows,
            seconds,
            " (full: more to read)" if txn.full else "",
        )
        commit = Commit(self.transactions, stored, rows, txn.full, seconds, pending.published)
        for listener in self.listeners:
            listener(commit)
