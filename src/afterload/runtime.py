"""The run loop: read the sources into transactions, commit them, tell the dbt trigger.

The data path is plain synchronous code on the main thread: reading and parsing are CPU work
under the GIL, so an event loop would buy nothing there, and signals are simplest on the main
thread. DuckDB releases the GIL while it stores a transaction, so during a backfill one commit
at a time runs on a commit thread while the main thread reads the next transaction (see
:meth:`Materializer._commit`); commits still happen strictly in order. The dbt trigger lives
on its own asyncio loop in its own thread (:class:`TriggerThread`), so a long commit never
delays a fire and a slow or hung dbt Cloud never delays a commit; ``notify_commit`` is the
only call on the hot path and it returns at once.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from types import FrameType
from typing import Any, TypeVar

from rich.console import Console

from afterload.clock import Clock, SystemClock
from afterload.config import Binding, Config, DbtJobTrigger, LoadedConfig
from afterload.destinations.base import Destination, TableWrite
from afterload.documents import DocumentError, DocumentParser
from afterload.errors import AfterloadError
from afterload.progress import Progress
from afterload.rejects import RejectsFile, reject_entry
from afterload.schema import (
    ColumnType,
    LineProblem,
    SchemaError,
    TableShape,
    load_json_schema,
    shape_from_json_schema,
)
from afterload.sources import LineTooLong, Position, Source
from afterload.sync_schedule import SyncPolicy
from afterload.transaction import BindingChanges, Transaction

log = logging.getLogger("afterload.runtime")

T = TypeVar("T")

POLL_SECONDS = 0.2
"""How often caught-up sources are looked at again when following."""
REFRESH_SECONDS = 1.0
"""How often globs are expanded again for new files when following."""
CHECKPOINT_VERSION = 1
LOGGED_REJECTS = 20


def materialization_name(loaded: LoadedConfig) -> str:
    return loaded.config.name or loaded.path.stem


def open_destination(loaded: LoadedConfig) -> Destination:
    dest = loaded.config.destination
    if dest is not None and dest.postgres is not None:
        try:
            from afterload.destinations.postgres import PostgresDestination
        except ImportError:
            raise AfterloadError(
                "the postgres destination needs psycopg: pip install 'afterload[postgres]'"
            ) from None
        return PostgresDestination.from_config(dest.postgres)
    from afterload.destinations.duckdb import DuckDBDestination

    if dest is None or dest.duckdb is None:
        return DuckDBDestination(loaded.resolve("afterload.duckdb"), "main")
    return DuckDBDestination(
        loaded.resolve(dest.duckdb.path), dest.duckdb.schema_, memory_limit=dest.duckdb.memory_limit
    )


# -------------------------------------------------------------------------------------------
# Bindings


@dataclass
class BindingState:
    """One binding at run time: its source, its table shape, its rejects file."""

    binding: Binding
    source: Source
    shape: TableShape
    parser: DocumentParser
    rejects: RejectsFile | None
    rejects_size: int = 0

    @property
    def table(self) -> str:
        return self.binding.table


def _binding_checkpoint(checkpoint: dict[str, Any], table: str) -> dict[str, Any]:
    entry = checkpoint.get("bindings", {}).get(table, {})
    return entry if isinstance(entry, dict) else {}


def _positions(entry: dict[str, Any]) -> dict[str, Position]:
    files = entry.get("files", {})
    return {name: Position(int(v[0]), int(v[1])) for name, v in files.items()}


def build_bindings(
    loaded: LoadedConfig, destination: Destination, checkpoint: dict[str, Any]
) -> list[BindingState]:
    config = loaded.config
    if not config.bindings:
        raise AfterloadError(f"{loaded.path}: bindings: the config has no bindings")
    seen: set[str] = set()
    stdin = 0
    states = []
    for binding in config.bindings:
        table = binding.table
        if table.lower() in seen:
            raise AfterloadError(f"{loaded.path}: two bindings write table {table!r}")
        seen.add(table.lower())
        stdin += binding.source == "-"
        if binding.schema_ is not None:
            schema = load_json_schema(table, loaded.resolve(binding.schema_))
            shape = shape_from_json_schema(
                table,
                binding.key,
                schema,
                delta=binding.delta_updates,
                wide_ints=destination.wide_ints,
            )
        else:
            shape = TableShape(
                table, binding.key, delta=binding.delta_updates, wide_ints=destination.wide_ints
            )
        existing = destination.columns(table)
        for name, ctype in (existing or {}).items():
            if name not in shape.columns:
                try:
                    shape.add(name, ctype)
                except LineProblem as exc:
                    raise SchemaError(f"{table}: {exc.reason}") from None
            elif shape.columns[name].type is not ctype and (
                not shape.columns[name].declared or ctype is ColumnType.HUGEINT
            ):
                shape.widen(name, ctype)  # a declared integer may be held wider, never narrower
        entry = _binding_checkpoint(checkpoint, table)
        source = Source(binding.source, loaded.base_dir, _positions(entry))
        rejects = None
        size = 0
        if binding.rejects is not None:
            path = loaded.resolve(binding.rejects)
            rejects = RejectsFile(path, binding.rejects)
            if "rejects" in entry:
                size = int(entry["rejects"])
                rejects.recover(size)
            else:
                size = rejects.size()
        parser = DocumentParser(
            shape,
            binding.key,
            hard_delete=binding.hard_delete,
            forbid_nul=not destination.stores_nul,
        )
        states.append(BindingState(binding, source, shape, parser, rejects, size))
    if stdin > 1:
        raise AfterloadError(f"{loaded.path}: only one binding can read standard input")
    return states


# -------------------------------------------------------------------------------------------
# The trigger, on its own loop


class TriggerThread:
    """The dbt job trigger on an asyncio loop of its own, driven from the data path's thread."""

    def __init__(self, settings: DbtJobTrigger, *, clock: Clock | None = None) -> None:
        self.settings = settings
        self._clock = clock
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="afterload-trigger", daemon=True
        )
        self._thread.start()
        self.trigger: Any = None

    def call(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def start(self, *, initial_fire: bool) -> None:
        from afterload.trigger import JobTrigger

        async def make() -> Any:
            trigger = JobTrigger(self.settings, clock=self._clock)
            await trigger.start(initial_fire=initial_fire)
            return trigger

        self.trigger = self.call(make())

    def check_access(self) -> None:
        """Fatal answers (bad key, unknown job) stop the run; others are only logged."""
        from afterload.trigger import check_access

        try:
            self.call(check_access(self.settings))
        except AfterloadError as exc:
            if getattr(exc, "fatal", True):
                raise
            log.warning("dbt Cloud is not reachable now (%s); materializing anyway", exc)

    def notify_commit(self, documents: int) -> None:
        if self.trigger is not None:
            self.trigger.notify_commit(documents)

    def fire_now(self) -> Any:
        from afterload.trigger import JobTrigger

        if self.trigger is None:

            async def make() -> Any:
                return JobTrigger(self.settings, clock=self._clock)

            self.trigger = self.call(make())
        return self.call(self.trigger.fire_now())

    def close(self, grace: float = 10.0) -> None:
        try:
            if self.trigger is not None:
                self.call(self.trigger.stop(grace), timeout=grace + 5)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=5)
            if not self._thread.is_alive():
                self.loop.close()


# -------------------------------------------------------------------------------------------
# The materializer


@dataclass
class RunStats:
    documents: int = 0
    bytes: int = 0
    transactions: int = 0
    stored: int = 0
    rejected: int = 0
    committed_documents: int = 0
    started: float = field(default_factory=time.monotonic)


class Stopper:
    """A stop request from a signal or a test, waited on instead of sleeping."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.reason: str | None = None

    def request(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason
        self.event.set()

    @property
    def requested(self) -> bool:
        return self.event.is_set()

    def sleep(self, seconds: float) -> None:
        self.event.wait(max(0.0, seconds))


class Materializer:
    """Reads, reduces and commits; one instance per run."""

    def __init__(
        self,
        loaded: LoadedConfig,
        destination: Destination,
        *,
        clock: Clock | None = None,
        trigger: TriggerThread | None = None,
        stopper: Stopper | None = None,
        sleep: Callable[[float], None] | None = None,
        progress: Progress | None = None,
    ) -> None:
        self.loaded = loaded
        self.config: Config = loaded.config
        self.name = materialization_name(loaded)
        self.destination = destination
        self.clock = clock or SystemClock()
        self.trigger = trigger
        self.stopper = stopper or Stopper()
        self.sleep = sleep or self.stopper.sleep
        self.progress = progress or Progress(None)
        self.policy = SyncPolicy(self.config.syncSchedule, self.name)
        self.limits = self.config.transaction
        self.stats = RunStats()
        self.bindings: list[BindingState] = []
        self.last_commit_at: datetime | None = None
        self.previous_full = False
        self._committer: ThreadPoolExecutor | None = None
        self._in_flight: tuple[Future[None], Transaction, list[TableWrite], float] | None = None

    # -- open --------------------------------------------------------------------------------

    def open(self) -> None:
        recovered = self.destination.open(self.name)
        if recovered.committed_at is not None:
            log.info(
                "%s: resuming after transaction %d committed at %s",
                self.name,
                recovered.transactions,
                recovered.committed_at.isoformat(timespec="seconds"),
            )
        self.bindings = build_bindings(self.loaded, self.destination, recovered.checkpoint)
        total = 0
        for b in self.bindings:
            for display, cursor in b.source.cursors.items():
                size = cursor.size()
                if size is not None:
                    total += max(0, size - b.source.positions()[display].offset)
        self.progress.start(total)
        if any(
            b.rejects is not None
            and "rejects" not in _binding_checkpoint(recovered.checkpoint, b.table)
            for b in self.bindings
        ):
            # Record the rejects files' sizes before any line is read, so that a crash before
            # the first data commit can still be undone exactly.
            self._commit(Transaction(), quiet=True)

    def close(self) -> None:
        in_flight, self._in_flight = self._in_flight, None
        if in_flight is not None:
            # Only left by an error already raised; the destination must not close under it.
            in_flight[0].exception()
        if self._committer is not None:
            self._committer.shutdown(wait=True)
            self._committer = None
        for b in self.bindings:
            b.source.close()
        self.progress.stop()

    # -- reading ----------------------------------------------------------------------------

    def _take(
        self, b: BindingState, lines: list[bytes], source: str, first: int, txn: Transaction
    ) -> None:
        changes = txn.changes.get(b.table)
        if changes is None:
            changes = BindingChanges(
                delta=b.binding.delta_updates, hard_delete=b.binding.hard_delete
            )
            txn.changes[b.table] = changes

        def problem(index: int, reason: str, raw: bytes) -> None:
            self._reject(b, source, first + index, reason, raw, txn)

        b.parser.take(lines, changes, problem)

    def _reject(
        self, b: BindingState, source: str, line: int, reason: str, raw: bytes, txn: Transaction
    ) -> None:
        if b.rejects is None:
            raise DocumentError(b.table, source, line, reason)
        txn.rejects.setdefault(b.table, []).append(reject_entry(source, line, reason, raw))
        self.stats.rejected += 1
        if self.stats.rejected <= LOGGED_REJECTS:
            log.warning(
                "%s: %s:%d: %s (sent to %s)", b.table, source, line, reason, b.rejects.display
            )
        elif self.stats.rejected == LOGGED_REJECTS + 1:
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
                    self._too_long(b, exc)
                    raise
                if chunk is None:
                    break
                read_any = True
                self._take(b, chunk.lines, chunk.source, chunk.first_line, txn)
                txn.documents += len(chunk.lines)
                txn.bytes += chunk.nbytes
                self.stats.documents += len(chunk.lines)
                self.stats.bytes += chunk.nbytes
                self.progress.advance(len(chunk.lines), chunk.nbytes)
                if self._in_flight is not None and self._in_flight[0].done():
                    self._settle()
                if self.stopper.requested:
                    return read_any
        return read_any

    def _too_long(self, b: BindingState, exc: LineTooLong) -> None:
        raise DocumentError(b.table, exc.source, exc.line, str(exc).split(": ", 1)[1]) from None

    def _stdin_open(self) -> bool:
        return any(b.source.is_stdin and not b.source.exhausted() for b in self.bindings)

    def read_caught_up(self, txn: Transaction) -> None:
        """``--once``: read until every source is caught up (stdin: closed) or txn is full."""
        while not txn.full and not self.stopper.requested:
            read = self._fill_once(txn, stdin_wait=POLL_SECONDS)
            if not read and not self._stdin_open():
                return

    # -- committing --------------------------------------------------------------------------

    def checkpoint(self) -> dict[str, Any]:
        bindings: dict[str, Any] = {}
        for b in self.bindings:
            files = {name: [p.offset, p.line] for name, p in b.source.positions().items()}
            entry: dict[str, Any] = {"files": files}
            if b.rejects is not None:
                entry["rejects"] = b.rejects_size
            bindings[b.table] = entry
        return {"version": CHECKPOINT_VERSION, "bindings": bindings}

    def _commit(self, txn: Transaction, *, quiet: bool = False, overlap: bool = False) -> None:
        """Commit ``txn``; with ``overlap``, return once it is handed to the commit thread.

        Only a full transaction (a backfill: more is waiting to be read) is overlapped, so the
        next one is read and parsed while DuckDB, which releases the GIL, stores this one.
        At most one commit is in flight and each waits for the one before, so commits stay
        strictly in order; everything a commit needs (rows, a snapshot of the table shape,
        the checkpoint) is taken here, before any more is read.
        """
        self._settle()
        started = time.monotonic()
        for b in self.bindings:
            entries = txn.rejects.get(b.table)
            if b.rejects is not None and (entries or quiet):
                b.rejects_size = b.rejects.append(entries or [])
        writes = []
        for b in self.bindings:
            changes = txn.changes.get(b.table)
            if changes is None or not changes.documents:
                continue
            writes.append(
                TableWrite(
                    b.table, b.table, b.shape.snapshot(), changes.upserts(), changes.deletes()
                )
            )
        published = self.clock.wall()
        checkpoint = self.checkpoint()
        self.last_commit_at = published
        if overlap:
            if self._committer is None:
                self._committer = ThreadPoolExecutor(1, thread_name_prefix="afterload-commit")
            future = self._committer.submit(self.destination.commit, writes, checkpoint, published)
            self._in_flight = (future, txn, writes, started)
            return
        self.destination.commit(writes, checkpoint, published)
        if not quiet:
            self._committed(txn, writes, started)

    def _committed(self, txn: Transaction, writes: list[TableWrite], started: float) -> None:
        stored = txn.stored
        self.stats.transactions += 1
        self.stats.committed_documents += stored
        self.progress.committed(self.stats.transactions)
        rows = sum(len(w.upserts) + len(w.deletes) for w in writes)
        log.info(
            "committed transaction %d: %d documents, %d rows written, %.2fs%s",
            self.stats.transactions,
            stored,
            rows,
            time.monotonic() - started,
            " (full: more to read)" if txn.full else "",
        )
        if self.trigger is not None and stored:
            self.trigger.notify_commit(stored)

    def _settle(self) -> None:
        """Wait for the commit in flight, if any; its error is raised here."""
        in_flight, self._in_flight = self._in_flight, None
        if in_flight is not None:
            future, txn, writes, started = in_flight
            future.result()
            self._committed(txn, writes, started)

    @contextmanager
    def _overlapping(self) -> Iterator[None]:
        """Leave no commit in flight: on success, and before any error leaves the loop.

        A bad line in transaction N+1 still stops the run only after N has committed (as
        when commits did not overlap), and if N's commit failed, that error is the one
        raised, since it happened first.
        """
        try:
            yield
        except BaseException:
            self._settle()
            raise
        self._settle()

    # -- the loops ---------------------------------------------------------------------------

    def run_once(self) -> int:
        """Read what is there, commit it (in as many transactions as it takes); documents stored."""
        with self._overlapping():
            while not self.stopper.requested:
                txn = Transaction()
                self.read_caught_up(txn)
                if not txn.empty():
                    self._commit(txn, overlap=txn.full and not self.stopper.requested)
                if not txn.full:
                    break
        for b in self.bindings:
            for name in b.source.pending():
                log.info("%s: %s ends with a partial line; left for the next run", b.table, name)
        return self.stats.committed_documents

    def run_follow(self) -> None:
        """Follow the sources until stopped, committing on the sync schedule."""
        with self._overlapping():
            next_refresh = 0.0
            while True:
                not_before = self.policy.next_commit_at(
                    self.last_commit_at, previous_was_full=self.previous_full
                )
                txn = Transaction()
                while True:
                    if time.monotonic() >= next_refresh:
                        for b in self.bindings:
                            b.source.refresh()
                        next_refresh = time.monotonic() + REFRESH_SECONDS
                    read = self._fill_once(txn, stdin_wait=0.0)
                    if txn.full or self.stopper.requested:
                        break
                    if read:
                        continue
                    # Caught up: let the commit in flight finish, so the trigger hears of it
                    # now and not when the next transaction is ready.
                    self._settle()
                    now = self.clock.wall()
                    if not txn.empty() and (not_before is None or now >= not_before):
                        break
                    if not self._stdin_open() and all(b.source.is_stdin for b in self.bindings):
                        break  # only stdin, and it is closed: nothing more can come
                    wait = POLL_SECONDS
                    if not txn.empty() and not_before is not None:
                        wait = min(wait, max(0.0, (not_before - now).total_seconds()))
                    self.sleep(wait)
                if not txn.empty():
                    self._commit(txn, overlap=txn.full and not self.stopper.requested)
                    self.previous_full = txn.full
                if self.stopper.requested:
                    return
                if (
                    not txn.full
                    and not self._stdin_open()
                    and all(b.source.is_stdin for b in self.bindings)
                ):
                    return


# -------------------------------------------------------------------------------------------
# Entry points for the CLI


@contextmanager
def _signals(stopper: Stopper) -> Iterator[None]:
    """SIGINT/SIGTERM ask for a clean stop; a second SIGINT interrupts at once."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if stopper.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        log.info("%s: committing what was read, then stopping", name)
        stopper.request(name)

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def run_materialization(
    loaded: LoadedConfig,
    *,
    once: bool,
    wait: bool = False,
    timeout: float | None = None,
    console: Console | None = None,
    clock: Clock | None = None,
    stopper: Stopper | None = None,
) -> int:
    """``afterload run``: the exit code (0 done, 1 on an error, ``--wait`` codes as ``trigger``)."""
    err = console or Console(stderr=True)
    stopper = stopper or Stopper()
    try:
        with _signals(stopper):
            return _run(
                loaded, once=once, wait=wait, timeout=timeout, err=err, clock=clock, stopper=stopper
            )
    except AfterloadError as exc:
        err.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
        return exc.exit_code


def _run(
    loaded: LoadedConfig,
    *,
    once: bool,
    wait: bool,
    timeout: float | None,
    err: Console,
    clock: Clock | None,
    stopper: Stopper,
) -> int:
    settings = loaded.config.dbt_job_trigger
    trigger = TriggerThread(settings, clock=clock) if settings is not None else None
    destination = open_destination(loaded)
    materializer: Materializer | None = None
    try:
        if trigger is not None:
            trigger.check_access()
        materializer = Materializer(
            loaded,
            destination,
            clock=clock,
            trigger=trigger,
            stopper=stopper,
            progress=Progress(err),
        )
        materializer.open()
        if once:
            stored = materializer.run_once()
            materializer.close()
            if trigger is not None and stored:
                return _fire_final(trigger, wait=wait, timeout=timeout, err=err)
            if trigger is not None:
                log.info("no documents were committed; the dbt job is not triggered")
            return 0
        if trigger is not None:
            trigger.start(initial_fire=True)
        materializer.run_follow()
        return 0
    finally:
        if materializer is not None:
            materializer.close()
        destination.close()
        if trigger is not None:
            trigger.close()


def _fire_final(trigger: TriggerThread, *, wait: bool, timeout: float | None, err: Console) -> int:
    from afterload.dbt.cloud import DbtCloudClient, RunStatus

    outcome = trigger.fire_now()
    log.info("dbt job %d: %s", trigger.settings.job_id, outcome.message)
    if outcome.kind == "failed":
        return 1
    if not wait or outcome.run_id is None:
        return 0

    async def wait_run() -> Any:
        async with DbtCloudClient(trigger.settings) as client:
            return await client.wait_for_run(outcome.run_id, timeout or 3600.0)

    final = trigger.call(wait_run())
    err.print(f"run {final.id}: {final.status_humanized}", highlight=False)
    if final.is_active:
        return 3
    return {RunStatus.SUCCESS: 0, RunStatus.CANCELLED: 2}.get(RunStatus(final.status), 1)
