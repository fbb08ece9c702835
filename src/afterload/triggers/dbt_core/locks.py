"""Which dbt is running: the project's run slot, visible to every afterload process.

A ``flock`` lock on a file in the project's ``target/``, so it works between processes
(``afterload run``, ``afterload trigger``, a dbt child) and vanishes with the last process
holding it, even one killed with SIGKILL. A dbt child inherits the descriptor, so its slot
lasts exactly as long as it does. The DuckDB turn (who may write the file) lives with the
destinations: :mod:`afterload.destinations.duckdb.turns`.
"""

from __future__ import annotations

import os
from pathlib import Path

from afterload.destinations.duckdb.turns import Busy, DuckDBTurns, Turnstile

__all__ = ["Busy", "DuckDBTurns", "RunSlot", "Turnstile"]


class RunSlot:
    """The one dbt run of a project at a time, visible to every afterload process.

    The lock file holds the pid of the dbt process that owns the slot, so ``replace`` in one
    process can interrupt a dbt started by another (the pid is its process group: dbt is
    started as a session leader).
    """

    def __init__(self, project_dir: Path) -> None:
        target = project_dir / "target"
        self.path = target / ".afterload-dbt.lock"
        self._lock = Turnstile(self.path, target / ".afterload-dbt.gate")

    def try_take(self) -> int | None:
        return self._lock.try_acquire()

    async def take(self, timeout: float | None = None) -> int:
        return await self._lock.acquire_async(timeout)

    def holder(self) -> int | None:
        """The pid written by the current holder, if the slot is held and names one."""
        if not self._lock.held():
            return None
        try:
            text = self.path.read_text().strip()
        except OSError:
            return None
        return int(text) if text.isdigit() else None

    @staticmethod
    def record(fd: int, pid: int) -> None:
        """Write the holder's pid into the lock file (the descriptor of a slot we hold)."""
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(pid).encode(), 0)
