"""One dbt child process: its log streamed to ``logging``, its end turned into a result.

Stopping escalates SIGINT (dbt cancels its queries), SIGTERM, SIGKILL, each after a grace
period, to the whole process group; the lock descriptors it shares with the child are closed
only once the child is reaped, so the slot and the DuckDB turn are free exactly when dbt is gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import time
from datetime import timedelta
from pathlib import Path
from typing import Literal

from afterload.durations import format_duration
from afterload.triggers.dbt_core.logs import parse_line
from afterload.triggers.dbt_core.results import DbtResult, RunResults, failure_sentence

log = logging.getLogger("afterload.trigger.dbt_core")

#: SIGINT lets dbt cancel its queries; SIGTERM and SIGKILL follow after this many seconds each.
GRACE = 10.0
_PR_SET_PDEATHSIG = 1
#: dbt's events that mean a signal interrupted it.
INTERRUPTED = frozenset({"LogCancelLine", "MainKeyboardInterrupt"})


def die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def signal_group(pgid: int, sig: signal.Signals) -> bool:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def group_alive(pgid: int) -> bool:
    """A process of the group is still alive. Zombies do not count: once dbt is gone, its
    children (multiprocessing's resource tracker) belong to an init that may never reap them.
    Without ``/proc`` (not Linux) this cannot be seen, and the group counts as gone."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            return True
    return False


async def group_gone(pgid: int, within: float) -> None:
    """SIGKILL is delivered at once, but a process takes a moment to end: wait for that (up to
    ``within``), so that a result means dbt and everything it started are gone."""
    deadline = time.monotonic() + within
    # processes that are not our children end without an event we could wait on
    while group_alive(pgid) and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.02)


class DbtRun:
    """One dbt child process; :meth:`result` waits for its end."""

    def __init__(
        self, proc: asyncio.subprocess.Process, command: str, target: Path, fds: list[int]
    ) -> None:
        self.proc = proc
        self.pid = proc.pid
        self.command = command
        self.target = target
        self.started = time.monotonic()
        self._fds = fds
        self._stop_reason: Literal["cancelled", "timeout"] | None = None
        self._invocation: str | None = None
        self._error: str | None = None
        self._last_text = ""
        self._interrupted = False  # dbt said it was interrupted (by us or another process)
        self.task: asyncio.Task[DbtResult] | None = None

    async def result(self) -> DbtResult:
        assert self.task is not None
        return await asyncio.shield(self.task)

    @property
    def running(self) -> bool:
        return self.proc.returncode is None

    async def interrupt(self, grace: float = GRACE, *, reason: str = "cancelled") -> None:
        """SIGINT, then SIGTERM after ``grace``, then SIGKILL: dbt gets to cancel its queries."""
        if self._stop_reason is None:
            self._stop_reason = "timeout" if reason == "timeout" else "cancelled"
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
            if self.proc.returncode is not None:
                break
            signal_group(self.pid, sig)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self.proc.wait()), grace)

    async def _pump(self) -> None:
        assert self.proc.stdout is not None
        while True:
            try:
                raw = await self.proc.stdout.readline()
            except ValueError:  # a line past the buffer limit: drop its rest
                raw = await self.proc.stdout.read(1 << 16)
            if not raw:
                return
            line = parse_line(raw.decode("utf-8", "replace"))
            if line.invocation_id and self._invocation is None:
                self._invocation = line.invocation_id
            if line.name in INTERRUPTED:
                self._interrupted = True
            if line.error and self._error is None and line.name not in INTERRUPTED:
                self._error = line.error
            if line.text:
                self._last_text = line.text
                log.log(line.level, "dbt: %s", line.text)

    async def _watch(self, timeout: float, grace: float) -> DbtResult:
        pump = asyncio.create_task(self._pump())
        try:
            try:
                await asyncio.wait_for(asyncio.shield(self.proc.wait()), timeout)
            except TimeoutError:
                await self.interrupt(grace, reason="timeout")
            await self.proc.wait()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(pump, grace)
        finally:
            pump.cancel()
            if signal_group(self.pid, signal.SIGKILL):  # whatever it left behind in its group
                await group_gone(self.pid, grace)
            for fd in self._fds:
                os.close(fd)  # our copies of the slot and the turn: now they are free
            self._fds = []
        return self._conclude(timeout)

    def _conclude(self, timeout: float) -> DbtResult:
        rc = self.proc.returncode
        seconds = time.monotonic() - self.started
        found = RunResults.read(self.target / "run_results.json", self._invocation)
        if self._invocation is None:
            found = None  # without dbt's invocation id we cannot tell the file is ours
        cmd = self.command

        def done(
            outcome: Literal["success", "error", "cancelled", "timeout"], msg: str
        ) -> DbtResult:
            return DbtResult(
                outcome=outcome, message=msg, returncode=rc, seconds=seconds, run_results=found
            )

        if self._stop_reason == "timeout":
            limit = format_duration_seconds(timeout)
            return done("timeout", f"dbt {cmd} did not finish within {limit} and was stopped")
        if self._stop_reason == "cancelled":
            return done("cancelled", f"dbt {cmd} (pid {self.pid}) was interrupted")
        if rc == 0:
            nodes = len(found.results) if found else 0
            return done("success", f"dbt {cmd} succeeded: {nodes} nodes in {seconds:.1f}s")
        if self._interrupted or rc in (-signal.SIGINT, -signal.SIGTERM):
            return done("cancelled", f"dbt {cmd} (pid {self.pid}) was interrupted from outside")
        if rc is not None and rc < 0:
            name = signal.Signals(-rc).name
            return done("error", f"dbt {cmd} (pid {self.pid}) was killed by {name}")
        if found is not None and not found.success:
            return done("error", failure_sentence(cmd, found))
        why = self._error or self._last_text or f"exit status {rc}"
        return done("error", f"dbt {cmd} failed: {why}")


def format_duration_seconds(seconds: float) -> str:
    return format_duration(timedelta(seconds=round(seconds, 3)))
