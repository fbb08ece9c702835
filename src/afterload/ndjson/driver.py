"""The NDJSON driver: reads the bindings' files (or stdin) into transactions and hands them,
with their checkpoint, to the core :class:`~afterload.core.materializer.Materializer`.

Plain synchronous code on the caller's thread: reading and parsing are CPU work under the GIL,
so an event loop would buy nothing here. ``run_once`` reads until caught up; ``run_follow``
follows new lines and new files until stopped, committing on the sync schedule.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

from afterload.clock import Clock
from afterload.core.checkpoint import Checkpoint
from afterload.core.documents import DocumentError
from afterload.core.materializer import CommitListener, Materializer
from afterload.core.stopper import Stopper
from afterload.core.transaction import BindingChanges, Transaction
from afterload.destinations.base import Destination
from afterload.ndjson.bindings import BindingState, build_bindings
from afterload.ndjson.config import LoadedNdjson
from afterload.ndjson.progress import Progress
from afterload.ndjson.rejects import reject_entry
from afterload.ndjson.sources import Chunk, LineTooLong
from afterload.ndjson.sync_schedule import SyncPolicy

log = logging.getLogger("afterload.runtime")

POLL_SECONDS = 0.2
"""How often caught-up sources are looked at again when following."""
REFRESH_SECONDS = 1.0
"""How often globs are expanded again for new files when following."""
LOGGED_REJECTS = 20
COMMIT_PATIENCE = 1.0
"""How long a due transaction waits for the commit before it; past that the commit is taken
to wait for the destination, and reading goes on (up to the transaction limit)."""


class NdjsonDriver:
    """Reads, reduces and hands transactions to the core; one instance per run."""

    def __init__(
        self,
        loaded: LoadedNdjson,
        core: Materializer,
        *,
        stopper: Stopper | None = None,
        sleep: Callable[[float], None] | None = None,
        progress: Progress | None = None,
    ) -> None:
        self.loaded = loaded
        self.core = core
        self.stopper = stopper or Stopper()
        self.sleep = sleep or self.stopper.sleep
        self.progress = progress or Progress(None)
        self.policy = SyncPolicy(loaded.config.sync_schedule, core.name)
        self.limits = loaded.config.transaction
        self.bindings: list[BindingState] = []
        self.rejected = 0
        self.committed_bytes = 0
        """Input bytes of the transactions handed to the core (its commits raise on failure)."""
        self.previous_full = False
        self._next_refresh = 0.0
        core.listeners.append(lambda commit: self.progress.committed(core.transactions))

    @classmethod
    def for_config(
        cls,
        loaded: LoadedNdjson,
        destination: Destination,
        *,
        clock: Clock | None = None,
        listeners: Sequence[CommitListener] = (),
        stopper: Stopper | None = None,
        sleep: Callable[[float], None] | None = None,
        progress: Progress | None = None,
    ) -> NdjsonDriver:
        """A driver with its own core, for the config's materialization name."""
        core = Materializer(destination, loaded.name, clock=clock, listeners=listeners)
        return cls(loaded, core, stopper=stopper, sleep=sleep, progress=progress)

    # -- open --------------------------------------------------------------------------------

    def open(self) -> None:
        recovered = self.core.open()
        self.bindings = build_bindings(
            self.loaded, self.core.destination, recovered.checkpoint, recovered.others
        )
        total = 0
        for b in self.bindings:
            positions = b.source.positions()
            for display, cursor in b.source.cursors.items():
                size = cursor.size()
                if size is not None:
                    total += max(0, size - positions[display].offset)
        self.progress.start(total)
        if any(b.rejects is not None and not b.rejects_recorded for b in self.bindings):
            # Record the rejects files' sizes before any line is read, so that a crash before
            # the first data commit can still be undone exactly.
            self._commit(Transaction(), quiet=True)

    def close(self) -> None:
        self.core.close()
        for b in self.bindings:
            b.source.close()
            if b.surveyor is not None:
                b.surveyor.close()
        self.progress.stop()

    # -- reading ----------------------------------------------------------------------------

    def _take(self, b: BindingState, chunk: Chunk, txn: Transaction) -> None:
        changes = txn.changes.get(b.table)
        if changes is None:
            changes = BindingChanges(
                delta=b.binding.delta_updates, hard_delete=b.binding.hard_delete
            )
            txn.changes[b.table] = changes
        if b.surveyor is not None:
            # Surveyed when the transaction is complete; split only if Python must parse them.
            changes.chunks.append((chunk.source, chunk.first_line, chunk.data))
            return
        self._parse(b, changes, chunk.lines, chunk.source, chunk.first_line, txn)

    def _parse(
        self,
        b: BindingState,
        changes: BindingChanges,
        lines: list[bytes],
        source: str,
        first: int,
        txn: Transaction,
    ) -> None:
        """The exact path: every line parsed in Python, problems worded with file and line."""

        def problem(index: int, reason: str, raw: bytes) -> None:
            self._reject(b, source, first + index, reason, raw, txn)

        b.parser.take(lines, changes, problem)

    def _resolve(self, txn: Transaction) -> None:
        """Survey each binding's unparsed lines (the destination parses usual ones itself);
        lines a survey finds anything unusual in all go through the exact path."""
        for b in self.bindings:
            changes = txn.changes.get(b.table)
            if changes is None or not changes.chunks or b.surveyor is None:
                continue
            chunks, changes.chunks = changes.chunks, []
            staged = b.surveyor.survey(
                b.shape,
                b.binding.key,
                [data for _, _, data in chunks],
                hard_delete=b.binding.hard_delete,
            )
            if staged is None:
                for source, first, data in chunks:
                    self._parse(b, changes, data.split(b"\n"), source, first, txn)
                continue
            changes.staged = staged
            changes.documents += staged.documents
            changes.bytes += sum(len(data) + 1 for _, _, data in chunks)

    def _reject(
        self, b: BindingState, source: str, line: int, reason: str, raw: bytes, txn: Transaction
    ) -> None:
        if b.rejects is None:
            raise DocumentError(b.table, source, line, reason)
        txn.rejects.setdefault(b.table, []).append(reject_entry(source, line, reason, raw))
        self.rejected += 1
        if self.rejected <= LOGGED_REJECTS:
            log.warning(
                "%s: %s:%d: %s (sent to %s)",
                *(b.table, source, line, reason, b.rejects.display),
                extra={"binding": b.table, "file": f"{source}:{line}", "reason": reason},
            )
        elif self.rejected == LOGGED_REJECTS + 1:
            log.warning("more rejected lines are not logged; see the rejects files")

    def _fill_once(self, txn: Transaction, *, stdin_wait: float) -> bool:
        """One pass over the bindings; True if anything was read."""
        read_any = False
        for b in self.bindings:
            while True:
                left_docs = self.limits.max_documents - txn.documents
                left_bytes = self.limits.max_bytes - txn.bytes
                if left_docs <= 0 or left_bytes <= 0:
                    txn.full = True
                    return read_any
                try:
                    chunk = b.source.read(left_docs, left_bytes, stdin_wait)
                except LineTooLong as exc:
                    reason = str(exc).split(": ", 1)[1]
                    raise DocumentError(b.table, exc.source, exc.line, reason) from None
                if chunk is None:
                    break
                read_any = True
                self._take(b, chunk, txn)
                txn.documents += chunk.count
                txn.bytes += chunk.nbytes
                self.progress.advance(chunk.count, chunk.nbytes)
                self.core.poll()
                if self.stopper.requested:
                    return read_any
        return read_any

    def _stdin_open(self) -> bool:
        return any(b.source.is_stdin and not b.source.exhausted() for b in self.bindings)

    def _only_closed_stdin(self) -> bool:
        """Only stdin, and it is closed: nothing more can come."""
        return not self._stdin_open() and all(b.source.is_stdin for b in self.bindings)

    def read_caught_up(self, txn: Transaction) -> None:
        """``--once``: read until every source is caught up (stdin: closed) or txn is full."""
        while not txn.full and not self.stopper.requested:
            read = self._fill_once(txn, stdin_wait=POLL_SECONDS)
            if not read and not self._stdin_open():
                return

    # -- committing --------------------------------------------------------------------------

    def checkpoint(self) -> Checkpoint:
        """Every binding's position now, for the commit of what was read up to here."""
        return Checkpoint(bindings={b.table: b.checkpoint() for b in self.bindings})

    def _commit(self, txn: Transaction, *, quiet: bool = False, overlap: bool = False) -> None:
        """Append the rejects, then hand ``txn`` and the checkpoint after it to the core.

        The commit before must have stood first: its checkpoint records the rejects file's
        size before this transaction's rejects.
        """
        self._resolve(txn)  # while the commit before may still be in flight
        self.core.settle()
        for b in self.bindings:
            entries = txn.rejects.get(b.table)
            if b.rejects is not None and (entries or quiet):
                b.rejects_size = b.rejects.append(entries or [])
        shapes = {b.table: b.shape for b in self.bindings}
        self.committed_bytes += txn.bytes
        self.core.commit(txn, self.checkpoint(), shapes, overlap=overlap, quiet=quiet)

    def record_trigger_states(self) -> None:
        """Commit the checkpoint alone when a trigger's state moved (a webhook delivery
        ended), so a restart does not deliver again what was delivered."""
        if self.core.states_changed():
            with self.core.draining():
                self._commit(Transaction(), quiet=True)

    # -- the loops ---------------------------------------------------------------------------

    def warn_unmatched(self, *, following: bool) -> None:
        """Say, once, which bindings' globs match no file: silence would look like success."""
        for b in self.bindings:
            if b.source.matches_nothing:
                log.warning(
                    "%s: %s matches no file%s",
                    b.table,
                    b.binding.source,
                    "; waiting for files to appear" if following else "",
                    extra={"binding": b.table, "reason": "no file matches the source glob"},
                )

    def run_once(self) -> int:
        """Read what is there, commit it (in as many transactions as it takes); documents stored."""
        self.warn_unmatched(following=False)
        with self.core.draining():
            while not self.stopper.requested:
                txn = Transaction()
                self.read_caught_up(txn)
                if not txn.empty():
                    self._commit(txn, overlap=txn.full and not self.stopper.requested)
                if not txn.full:
                    break
        for b in self.bindings:
            for name in b.source.pending():
                log.info(
                    "%s: %s ends with a partial line; left for the next run",
                    *(b.table, name),
                    extra={"binding": b.table, "file": name},
                )
        return self.core.documents

    def run_follow(self) -> None:
        """Follow the sources until stopped, committing on the sync schedule."""
        self.warn_unmatched(following=True)
        with self.core.draining():
            while True:
                txn = self._read_follow()
                if not txn.empty():
                    # Every commit goes to the commit thread, so reading goes on while it
                    # waits for the destination (a DuckDB file held by dbt or a reader).
                    self._commit(txn, overlap=not self.stopper.requested)
                    self.previous_full = txn.full
                if self.stopper.requested:
                    return
                if not txn.full and self._only_closed_stdin():
                    return

    def _read_follow(self) -> Transaction:
        """Fill one transaction while following: until full, stopped, or due by the schedule."""
        not_before = self.policy.next_commit_at(
            self.core.last_commit_at, previous_was_full=self.previous_full
        )
        txn = Transaction()
        while True:
            if time.monotonic() >= self._next_refresh:
                for b in self.bindings:
                    empty = b.source.matches_nothing
                    if b.source.refresh() and empty:
                        log.info("%s: %s now matches a file", b.table, b.binding.source)
                self._next_refresh = time.monotonic() + REFRESH_SECONDS
            read = self._fill_once(txn, stdin_wait=0.0)
            if txn.full or self.stopper.requested:
                break
            if read:
                continue
            # Caught up: settle the commit in flight if it finished, so the trigger hears of
            # it now and not when the next transaction is ready. One still waiting for the
            # destination is not waited for: reading goes on, up to the transaction limit.
            self.core.poll()
            if txn.empty():
                self.core.caught_up()
            if txn.empty() and self.core.states_changed():
                self._commit(Transaction(), quiet=True)
            now = self.core.clock.wall()
            due = not_before is None or now >= not_before
            if not txn.empty() and due and self.core.settle_within(COMMIT_PATIENCE):
                break
            if self._only_closed_stdin():
                break
            wait = POLL_SECONDS
            if not txn.empty() and not_before is not None:
                wait = min(wait, max(0.0, (not_before - now).total_seconds()))
            self.sleep(wait)
        return txn
