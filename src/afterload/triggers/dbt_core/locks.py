"""Two cross-process locks: whose turn it is on a DuckDB file, and which dbt is running.

Both are ``flock`` locks on small files beside what they guard, so they work between
processes (``afterload run``, ``afterload trigger``, a dbt child) and vanish with the last
process holding them, even one killed with SIGKILL: a crash never leaves a stale lock.
A dbt child inherits the descriptors, so its turn and its slot last exactly as long as it does.

Waiting polls with ``LOCK_NB`` so that it can honour a deadline and asyncio cancellation; a
waiter first takes the *gate*, then the lock, then lets the gate go, so a party that waits
is served before the holder can take the lock again: the loader's commit loop cannot starve
dbt, nor dbt the loader.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

POLL = 0.02


class Busy(Exception):
    """The lock was not free within the time allowed."""


def _open(path: Path) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)


def _try(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


class _Turnstile:
    """A fair-ish exclusive lock between processes: a gate file, then the lock file."""

    def __init__(self, lock: Path, gate: Path) -> None:
        self.lock_path = lock
        self.gate_path = gate

    def try_acquire(self) -> int | None:
        """The lock's descriptor if it is free now (not waiting); None if someone holds it."""
        gate = _open(self.gate_path)
        try:
            if not _try(gate):
                return None
            fd = _open(self.lock_path)
            if _try(fd):
                return fd
            os.close(fd)
            return None
        finally:
            os.close(gate)

    def acquire(self, timeout: float | None = None) -> int:
        """Block (polling) until the lock is ours; returns its descriptor."""
        deadline = None if timeout is None else time.monotonic() + timeout
        gate = _open(self.gate_path)
        try:
            while not _try(gate):
                _sleep_or_raise(deadline)
            fd = _open(self.lock_path)
            while not _try(fd):
                try:
                    _sleep_or_raise(deadline)
                except Busy:
                    os.close(fd)
                    raise
            return fd
        finally:
            os.close(gate)  # closing the only descriptor releases the gate

    async def acquire_async(self, timeout: float | None = None) -> int:
        """As :meth:`acquire`, without blocking the event loop; cancellable."""
        deadline = None if timeout is None else time.monotonic() + timeout
        gate = _open(self.gate_path)
        fd: int | None = None
        try:
            while not _try(gate):
                await _asleep_or_raise(deadline)
            fd = _open(self.lock_path)
            while not _try(fd):
                await _asleep_or_raise(deadline)
            got, fd = fd, None
            return got
        finally:
            if fd is not None:
                os.close(fd)
            os.close(gate)

    def held(self) -> bool:
        """Whether some process holds the lock right now (a snapshot, for status lines)."""
        fd = _open(self.lock_path)
        try:
            return not _try(fd)
        finally:
            os.close(fd)


def _sleep_or_raise(deadline: float | None) -> None:
    if deadline is not None and time.monotonic() >= deadline:
        raise Busy
    time.sleep(POLL)


async def _asleep_or_raise(deadline: float | None) -> None:
    import asyncio  # here, not at the top: the DuckDB path without dbt runs no event loop

    if deadline is not None and time.monotonic() >= deadline:
        raise Busy
    await asyncio.sleep(POLL)


class DuckDBTurns:
    """Whose turn it is to open one DuckDB file read-write: the loader's commit, or a dbt run.

    DuckDB lets one process hold a file at a time, and a second ``connect`` fails at once
    instead of waiting. So each side takes its turn here first and opens DuckDB only inside it:
    the loader around each commit (then closes its connection), the dbt runner for the whole
    life of a dbt process. Neither ever meets the other's DuckDB lock.
    """

    def __init__(self, database: Path) -> None:
        self.database = database
        self._lock = _Turnstile(
            database.with_name(database.name + ".afterload-turn"),
            database.with_name(database.name + ".afterload-gate"),
        )

    def __repr__(self) -> str:
        return f"DuckDBTurns({self.database})"

    @contextlib.contextmanager
    def turn(self, timeout: float | None = None) -> Iterator[None]:
        """The loader's side: hold the file for one commit (blocks while dbt builds)."""
        fd = self._lock.acquire(timeout)
        try:
            yield
        finally:
            os.close(fd)

    @contextlib.asynccontextmanager
    async def turn_async(self, timeout: float | None = None) -> AsyncIterator[int]:
        """The runner's side: the descriptor to hand to the dbt child (``pass_fds``)."""
        fd = await self._lock.acquire_async(timeout)
        try:
            yield fd
        finally:
            os.close(fd)

    def acquire(self, timeout: float | None = None) -> int:
        """A turn as a descriptor, to hand to a child process: it ends when every copy closes."""
        return self._lock.acquire(timeout)

    async def acquire_async(self, timeout: float | None = None) -> int:
        """The runner's side, held for a dbt process's whole life: close the descriptor (in
        every process that has it) to end the turn."""
        return await self._lock.acquire_async(timeout)

    def busy(self) -> bool:
        return self._lock.held()


class RunSlot:
    """The one dbt run of a project at a time, visible to every afterload process.

    The lock file holds the pid of the dbt process that owns the slot, so ``replace`` in one
    process can interrupt a dbt started by another (the pid is its process group: dbt is
    started as a session leader).
    """

    def __init__(self, project_dir: Path) -> None:
        target = project_dir / "target"
        self.path = target / ".afterload-dbt.lock"
        self._lock = _Turnstile(self.path, target / ".afterload-dbt.gate")

    def try_take(self) -> int | None:
        return self._lock.try_acquire()

    async def take(self, timeout: float | None = None) -> int:
        return await self._lock.acquire_async(timeout)

    def holder(self) -> int | None:
        """The pid written by the current holder, if the slot is held and names one."""
        if not self.path.exists():  # never taken: look without creating anything
            return None
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
