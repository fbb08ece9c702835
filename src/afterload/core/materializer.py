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

from pydantic import JsonValue

from afterload.clock import Clock, SystemClock
from afterload.core.checkpoint import Checkpoint
from afterload.core.committer import Committer
from afterload.core.schema import TableShape
from afterload.core.transaction import Transaction
from afterload.core.trigger_state import CommitStamp, TriggerStateSource
from afterload.destinations.base import Destination, Recovered, TableWrite

log = logging.getLogger("afterload.materializer")


@dataclass(frozen=True, slots=True)
class Commit:
    """What a listener hears after a commit stood."""

    number: int
    """The transaction's number in the materialization's life: it continues from the count the
    checkpoint row holds, so numbers do not restart at 1 in every process."""
    documents: int
    """Documents stored (0: nothing for a trigger to do)."""
    rows: int
    full: bool
    seconds: float
    sequence: int = 0
    """The destination's commit count after this commit (increases across restarts)."""
    tables: tuple[str, ...] = ()
    """The tables that received documents."""
    published_at: datetime | None = None
    """The commit's ``flow_published_at`` (every row of a commit carries the same)."""
    bytes: int = 0
    """Bytes of input lines read into this transaction."""


CommitListener = Callable[[Commit], None]
OpenListener = Callable[[Recovered], None]
TriggerStamp = Callable[[int, datetime, int], Mapping[str, JsonValue]]
"""``stamp(transaction, published_at, documents)``: trigger states to commit with it."""


@dataclass(frozen=True, slots=True)
class _Pending:
    txn: Transaction
    writes: list[TableWrite]
    started: float
    quiet: bool
    stamp: CommitStamp


class Materializer:
    """Commits transactions in order into one destination, for one materialization."""

    def __init__(
        self,
        destination: Destination,
        name: str,
        *,
        clock: Clock | None = None,
        listeners: Sequence[CommitListener] = (),
        state_sources: Sequence[TriggerStateSource] = (),
        embedded_document: bool = False,
    ) -> None:
        self.destination = destination
        self.name = name
        self.clock = clock or SystemClock()
        self.listeners = list(listeners)
        self.state_sources = list(state_sources)
        """Triggers whose state is committed in the checkpoint (see :mod:`.trigger_state`)."""
        self.embedded_document = embedded_document
        """Rows carry their document in ``flow_document`` (see TableWrite)."""
        self.transactions = 0
        """Transactions that stored something, committed by this materializer."""
        self.sequence = 0
        """The destination's committed transaction count (every commit, quiet ones too)."""
        self.documents = 0
        self.rows = 0
        self.last_commit_at: datetime | None = None
        self.opened: list[OpenListener] = []
        """Called with the committed state once the destination is open (before any commit)."""
        self.stamp: TriggerStamp | None = None
        """Fills the checkpoint's ``triggers`` for each commit (the triggers' durable state)."""
        self._triggers: dict[str, JsonValue] = {}
        self.resumed_from = 0
        """Transactions committed before this run (by earlier processes), known after open."""
        self._committer: Committer[_Pending] = Committer(self._committed)
        self._kept = False
        """The last commit was full and kept a shared destination (see :meth:`caught_up`)."""

    def open(self) -> Recovered:
        """Open the destination (raising its fence) and return where to resume from."""
        recovered = self.destination.open(self.name)
        self.sequence = recovered.transactions
        self._triggers = dict(recovered.checkpoint.triggers)
        for source in self.state_sources:
            source.restore(recovered.checkpoint.triggers)
        for listener in self.opened:
            listener(recovered)
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
            writes.append(
                TableWrite(
                    binding,
                    binding,
                    shape,
                    changes.upserts(),
                    changes.deletes(),
                    embedded_document=self.embedded_document,
                    staged=changes.staged,
                )
            )
        published = self.clock.wall()
        self.last_commit_at = published
        self.sequence += 1
        tables = () if quiet else tuple(sorted({w.table for w in writes}))
        stamp = CommitStamp(self.sequence, tables, published)
        # Trigger states are carried from commit to commit (a driver's own entries win, the
        # triggers' own last), so a commit that does not mention a trigger never forgets it.
        triggers = {**self._triggers, **checkpoint.triggers}
        for source in self.state_sources:
            triggers.update(source.states(stamp))
        if self.stamp is not None:
            triggers.update(self.stamp(self.sequence, published, 0 if quiet else txn.stored))
        # A trigger that owes nothing says so with None: its entry is dropped, not carried.
        triggers = {key: state for key, state in triggers.items() if state is not None}
        self._triggers = triggers
        checkpoint = checkpoint.model_copy(update={"triggers": triggers})
        pending = _Pending(txn, writes, started, quiet, stamp)

        release = None if txn.full else getattr(self.destination, "release", None)
        self._kept = txn.full

        def store() -> None:
            self.destination.commit(writes, checkpoint, published)
            if release is not None:
                release()  # caught up: a destination shared with readers lets them in now

        self._committer.run(store, pending, overlap=overlap)

    def caught_up(self) -> None:
        """The driver found nothing more after a full commit: let a destination shared with
        readers go now (a backfill ending exactly on a transaction boundary kept the file,
        locking readers and dbt out until the next line came)."""
        if self._kept and not self.busy:
            self._kept = False
            release = getattr(self.destination, "release", None)
            if release is not None:
                release()

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

    def states_changed(self) -> bool:
        """Whether a trigger's committed state is stale (a delivery ended since the last commit)."""
        return any(source.changed() for source in self.state_sources)

    def close(self) -> None:
        """Let a commit in flight end (the destination is closed by its owner)."""
        self._committer.close()

    def _committed(self, pending: _Pending) -> None:
        if pending.quiet:
            return
        txn, writes = pending.txn, pending.writes
        stored = txn.stored
        rows = sum(w.rows for w in writes)
        self.transactions += 1
        self.documents += stored
        self.rows += rows
        seconds = time.monotonic() - pending.started
        log.info(
            "committed transaction %d: %d documents, %d rows written, %.2fs%s",
            pending.stamp.sequence,
            stored,
            rows,
            seconds,
            " (full)" if txn.full else "",
            extra={
                "transaction": pending.stamp.sequence,
                "counts": {"documents": stored, "rows": rows, "seconds": round(seconds, 3)},
            },
        )
        stamp = pending.stamp
        commit = Commit(
            self.transactions,
            stored,
            rows,
            txn.full,
            seconds,
            sequence=stamp.sequence,
            tables=stamp.tables,
            published_at=stamp.published_at,
            bytes=txn.bytes,
        )
        for listener in self.listeners:
            listener(commit)
