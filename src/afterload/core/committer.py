"""One commit in flight at a time, strictly in order, optionally overlapping the next read.

A full transaction (a backfill: more is waiting) is handed to a commit thread, so the driver
reads and parses the next one while the destination, which releases the GIL (DuckDB does),
stores this one. Each commit waits for the one before, so commits stay in order; everything
a commit needs (rows, a snapshot of each table shape, the checkpoint) is taken before it is
handed over, so nothing the driver does next can change it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from typing import Generic, TypeVar

T = TypeVar("T")


class Committer(Generic[T]):
    """Runs commit callables; :meth:`settle` waits for the one in flight and raises its error."""

    def __init__(self, done: Callable[[T], None]) -> None:
        """``done(tag)`` is called on the caller's thread once the commit tagged ``tag`` stood."""
        self._done = done
        self._pool: ThreadPoolExecutor | None = None
        self._in_flight: tuple[Future[None], T] | None = None

    @property
    def busy(self) -> bool:
        return self._in_flight is not None

    def run(self, commit: Callable[[], None], tag: T, *, overlap: bool) -> None:
        """Commit now (after the one in flight); with ``overlap`` return once it is handed over."""
        self.settle()
        if not overlap:
            commit()
            self._done(tag)
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="afterload-commit")
        self._in_flight = (self._pool.submit(commit), tag)

    def poll(self) -> None:
        """Settle the commit in flight if it already finished (cheap; called while reading)."""
        if self._in_flight is not None and self._in_flight[0].done():
            self.settle()

    def settle_within(self, seconds: float) -> bool:
        """Settle the commit in flight if it ends within ``seconds``; False if it is still going
        (waiting for the destination: a DuckDB file another process holds)."""
        if self._in_flight is not None:
            done, _ = wait([self._in_flight[0]], timeout=seconds)
            if not done:
                return False
        self.settle()
        return True

    def settle(self) -> None:
        """Wait for the commit in flight, if any; its error is raised here."""
        in_flight, self._in_flight = self._in_flight, None
        if in_flight is not None:
            future, tag = in_flight
            future.result()
            self._done(tag)

    @contextmanager
    def draining(self) -> Iterator[None]:
        """Leave no commit in flight: on success, and before any error leaves the block.

        A bad line in transaction N+1 still stops the run only after N has committed (as when
        commits do not overlap), and if N's commit failed, that error is the one raised,
        since it happened first.
        """
        try:
            yield
        except BaseException:
            self.settle()
            raise
        self.settle()

    def close(self) -> None:
        in_flight, self._in_flight = self._in_flight, None
        if in_flight is not None:
            # Only left by an error already raised; the destination must not close under it.
            in_flight[0].exception()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
