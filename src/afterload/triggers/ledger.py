"""The trigger's side of the run ledger: each decision written down, each run followed to its end.

Writes go through a :class:`~afterload.triggers.records.RunBook` (the destination's table) in a
worker thread (the destination takes its own turn, so a long commit delays a ledger row, never
the reverse, and never the trigger's event loop). A ledger that cannot be written is logged and
loading goes on: the ledger reports, it never blocks.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable

from afterload.clock import Clock, SystemClock
from afterload.errors import AfterloadError
from afterload.triggers.base import FOLLOW_EVERY, FireOutcome
from afterload.triggers.memory import Mark, TriggerMemory
from afterload.triggers.records import RunBook, RunRecord

log = logging.getLogger("afterload.trigger")

MAX_LOOKS = 720
"""Looks at one run before it is given up on (6 hours at 30 s): the calls stay bounded."""


@runtime_checkable
class FollowsRuns(Protocol):
    """A trigger kind whose runs can be looked at after they started (dbt Cloud)."""

    async def run_state(self, run_id: int) -> tuple[str, datetime | None] | None:
        """``(status, finished_at)`` once the run ended, None while it is going."""
        ...


def decision(outcome: FireOutcome) -> str:
    """The ledger's words for a fire's outcome."""
    if outcome.kind == "skipped":
        runs = ", ".join(str(r) for r in outcome.active)
        return f"skipped for run {runs}" if runs else "skipped"
    if outcome.kind == "failed":
        reason = outcome.message
        if reason.startswith("failed"):
            reason = reason.removeprefix("failed").strip(" :")
            if reason.startswith("(") and reason.endswith(")"):
                reason = reason[1:-1]
        return f"failed: {reason}"[:1000]
    if outcome.cancelled:
        return "replaced " + ", ".join(str(r) for r in outcome.cancelled)
    return "started"


@dataclass
class _Open:
    entry: RunRecord
    looks: int = 0


class LedgerRecorder:
    """Writes one trigger's decisions and follows the runs it started until they end."""

    def __init__(
        self,
        ledger: RunBook,
        memory: TriggerMemory,
        *,
        materialization: str,
        job: str,
        mode: str | None,
        clock: Clock | None = None,
        follow_every: float = FOLLOW_EVERY,
        max_looks: int = MAX_LOOKS,
    ) -> None:
        self.ledger = ledger
        self.memory = memory
        self.materialization = materialization
        self.job = job
        self.mode = mode
        self.clock = clock or SystemClock()
        self.follow_every = follow_every
        self.max_looks = max_looks
        self.open: dict[str, _Open] = {}
        self.written = 0
        self.looks = 0
        """Calls made to follow runs (for tests and metrics: they stay bounded)."""
        self.finished: list[Callable[[RunRecord, str], None]] = []
        self.since = self.clock.wall()
        """When this process's recorder began: older open rows are an earlier process's."""
        self._earlier_closed = False

    async def _write(self, what: str, call: Callable[[], None]) -> bool:
        try:
            await asyncio.to_thread(call)
        except AfterloadError as exc:
            log.warning("%s: the run ledger could not be written (%s): %s", self.job, what, exc)
            return False
        return True

    async def _open_rows(self) -> list[RunRecord]:
        """This trigger's started runs whose end the ledger does not know (newest 50)."""
        try:
            rows = await asyncio.to_thread(
                self.ledger.read_runs, self.materialization, last=50, open_only=True
            )
        except AfterloadError as exc:
            log.warning("%s: the run ledger could not be read: %s", self.job, exc)
            return []
        return [entry for entry in rows if entry.trigger == self.memory.name]

    async def resume(self) -> None:
        """Take up the runs an earlier process started and did not see end."""
        for entry in await self._open_rows():
            self.open[entry.entry] = _Open(entry)

    async def close_earlier(self) -> None:
        """Runs an earlier process started as its own children (dbt Core) and never saw end:
        they ended with it (interrupted at its stop, or killed with it by the orphan guard),
        so they are written down as cancelled, now, instead of staying "running" for ever.
        Their data stays owed: only a success covers it. Once per process; rows this process
        wrote are never touched."""
        if self._earlier_closed:
            return
        self._earlier_closed = True
        for entry in await self._open_rows():
            if entry.created_at >= self.since:
                continue
            key, when = entry.entry, self.clock.wall()

            def finish(key: str = key, when: datetime = when) -> None:
                self.ledger.finish_run(key, "cancelled", when)

            if await self._write("an earlier run's end", finish):
                log.info(
                    "%s: run %s of an earlier process ended with it; recorded as cancelled",
                    self.job,
                    entry.run_id,
                )

    async def record(self, outcome: FireOutcome, covering: Mark | None) -> RunRecord:
        entry = RunRecord(
            materialization=self.materialization,
            trigger=self.memory.name,
            job=self.job,
            run_id=outcome.run_id,
            mode=self.mode,
            decision=decision(outcome),
            covers_transaction=covering.transaction if covering else None,
            covers_committed_at=covering.committed_at if covering else None,
            created_at=self.clock.wall(),
            url=outcome.url,
        )
        if await self._write("a decision", lambda: self.ledger.record_run(entry)):
            self.written += 1
            if entry.started:
                self.open[entry.entry] = _Open(entry)
        return entry

    async def follow(self, action: FollowsRuns, stopped: Callable[[], bool]) -> None:
        """Look at the open runs every ``follow_every`` seconds until stopped."""
        while not stopped():
            await self.clock.sleep(self.follow_every)
            if stopped():
                return
            await self.look(action.run_state)

    async def ended(self, run_id: int, status: str, finished_at: datetime) -> None:
        """A run this process watched to its end (dbt Core): its status and finish time."""

        async def state(rid: int) -> tuple[str, datetime | None] | None:
            return (status, finished_at) if rid == run_id else None

        await self.look(state, only=run_id)

    async def look(
        self,
        state: Callable[[int], Awaitable[tuple[str, datetime | None] | None]],
        *,
        only: int | None = None,
    ) -> None:
        """One look at each open run; an ended run gets its status and finish time."""
        for key, item in list(self.open.items()):
            run_id = item.entry.run_id
            assert run_id is not None
            if only is not None and run_id != only:
                continue
            item.looks += 1
            self.looks += 1
            try:
                ended = await state(run_id)
            except AfterloadError as exc:
                log.info("%s: run %d could not be looked at (%s)", self.job, run_id, exc)
                ended = None
            if ended is None:
                if item.looks >= self.max_looks:
                    log.info("%s: run %d still going; no longer followed", self.job, run_id)
                    del self.open[key]
                continue
            status, finished_at = ended
            when = finished_at or self.clock.wall()

            def finish(key: str = key, status: str = status, when: datetime = when) -> None:
                self.ledger.finish_run(key, status, when)

            if await self._write("a run's end", finish):
                del self.open[key]
                entry = item.entry
                if status == "success" and entry.covers_transaction is not None:
                    assert entry.covers_committed_at is not None
                    self.memory.succeeded(
                        Mark(
                            transaction=entry.covers_transaction,
                            committed_at=entry.covers_committed_at,
                        )
                    )
                for listener in self.finished:
                    listener(entry, status)
