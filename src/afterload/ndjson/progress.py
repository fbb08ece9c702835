"""Progress of a long read: a rich bar on a terminal, a log line every few seconds otherwise."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

# rich.progress loads with the first bar: a pipe, a log file or JSON logs never show one.
if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress as RichProgress
    from rich.progress import TaskID

log = logging.getLogger("afterload.progress")

LOG_EVERY = 5.0


class Progress:
    """Counts documents, bytes and transactions; shows them as fits the output."""

    def __init__(self, console: Console | None, *, every: float = LOG_EVERY) -> None:
        self.console = console
        self.every = every
        self.documents = 0
        self.bytes = 0
        self.transactions = 0
        self._started = time.monotonic()
        self._last_log = self._started
        self._logged_documents = 0
        self._bar: RichProgress | None = None
        self._task: TaskID | None = None

    @property
    def interactive(self) -> bool:
        return self.console is not None and self.console.is_terminal

    def start(self, total_bytes: int) -> None:
        self._started = self._last_log = time.monotonic()
        if self.interactive and total_bytes > 0 and self._bar is None:
            from rich.progress import BarColumn, DownloadColumn, TextColumn, TimeElapsedColumn
            from rich.progress import Progress as RichProgress

            self._bar = RichProgress(
                TextColumn("[bold]reading"),
                BarColumn(),
                DownloadColumn(),
                TextColumn(
                    "{task.fields[docs]} docs, {task.fields[rate]} docs/s, "
                    "{task.fields[txns]} transactions"
                ),
                TimeElapsedColumn(),
                console=self.console,
                transient=True,
            )
            self._bar.start()
            self._task = self._bar.add_task("read", total=total_bytes, docs=0, rate=0, txns=0)

    def rate(self) -> float:
        elapsed = time.monotonic() - self._started
        return self.documents / elapsed if elapsed > 0 else 0.0

    def advance(self, documents: int, nbytes: int) -> None:
        self.documents += documents
        self.bytes += nbytes
        now = time.monotonic()
        if self._bar is not None and self._task is not None:
            self._bar.update(
                self._task,
                advance=nbytes,
                docs=f"{self.documents:,}",
                rate=f"{self.rate():,.0f}",
                txns=self.transactions,
            )
        elif now - self._last_log >= self.every:
            self.log_line(now)

    def log_line(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        recent = (self.documents - self._logged_documents) / max(now - self._last_log, 1e-9)
        log.info(
            "read %d documents (%.1f MiB), %.0f docs/s, %d transactions committed",
            self.documents,
            self.bytes / (1 << 20),
            recent,
            self.transactions,
        )
        self._last_log = now
        self._logged_documents = self.documents

    def committed(self, transactions: int) -> None:
        self.transactions = transactions
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, txns=transactions)

    def stop(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
