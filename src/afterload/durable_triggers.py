"""Binds a run's triggers to its materialization: state committed with the data, the ledger,
and the start-up decision (``on_start``).

The materializer stays trigger-agnostic: it asks :meth:`DurableTriggers.stamp` for the
``triggers`` part of each checkpoint and reports each commit that stood; this module keeps one
:class:`~afterload.triggers.memory.TriggerMemory` per trigger in step with both.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime

from pydantic import JsonValue

from afterload.clock import Clock
from afterload.core.materializer import Commit, Materializer
from afterload.destinations.base import Destination, Recovered
from afterload.destinations.ledger import LedgerEntry, RunLedger
from afterload.errors import AfterloadError
from afterload.triggers.base import FOLLOW_EVERY, TriggerAction
from afterload.triggers.ledger import LedgerRecorder
from afterload.triggers.memory import TriggerMemory, recover
from afterload.triggers.records import RunRecord
from afterload.triggers.runner import JobTrigger

log = logging.getLogger("afterload.trigger")

RECOVER_ROWS = 500
"""Ledger rows read at start to learn which runs cover what (the newest ones matter)."""


def trigger_name(action: TriggerAction) -> str:
    """The key of a trigger's state and ledger rows (a kind may set ``name``)."""
    name = getattr(action, "name", None)
    return name if isinstance(name, str) else action.label


def to_record(entry: LedgerEntry) -> RunRecord:
    return RunRecord.model_validate(entry.model_dump())


class DestinationRunBook:
    """Implements the triggers' :class:`~afterload.triggers.records.RunBook` on a destination's
    ledger table: the one place the two row models meet."""

    def __init__(self, ledger: RunLedger) -> None:
        self.ledger = ledger

    def record_run(self, record: RunRecord) -> None:
        self.ledger.record_run(LedgerEntry.model_validate(record.model_dump()))

    def finish_run(self, entry: str, status: str, finished_at: datetime) -> None:
        self.ledger.finish_run(entry, status, finished_at)

    def read_runs(
        self, materialization: str, *, last: int | None = None, open_only: bool = False
    ) -> list[RunRecord]:
        rows = self.ledger.read_runs(materialization, last=last, open_only=open_only)
        return [to_record(row) for row in rows]


class DurableTriggers:
    """One memory per trigger, fed by the materializer's commits and read back at open."""

    def __init__(
        self,
        actions: Sequence[TriggerAction],
        core: Materializer,
        destination: Destination,
        *,
        clock: Clock | None = None,
        follow_every: float = FOLLOW_EVERY,
    ) -> None:
        self.core = core
        self.clock = clock
        self.follow_every = follow_every
        self.ledger = (
            DestinationRunBook(destination) if isinstance(destination, RunLedger) else None
        )
        self.memories = {
            trigger_name(a): TriggerMemory(
                trigger_name(a), on_success=bool(getattr(a, "confirms", False))
            )
            for a in actions
        }
        core.opened.append(self._opened)
        core.stamp = self.stamp
        core.listeners.insert(0, self._stood)  # before the triggers hear of the commit

    def _opened(self, recovered: Recovered) -> None:
        rows: list[RunRecord] = []
        if self.ledger is not None:
            try:
                rows = self.ledger.read_runs(self.core.name, last=RECOVER_ROWS)
            except AfterloadError as exc:
                log.warning("the run ledger could not be read: %s", exc)
        for name, memory in self.memories.items():
            memory.load(
                recover(
                    recovered.checkpoint.triggers.get(name),
                    transactions=recovered.transactions,
                    committed_at=recovered.committed_at,
                    ledger=[r for r in rows if r.trigger == name],
                    on_success=memory.on_success,
                )
            )
            state = memory.state
            if state.pending and state.owed is not None:
                log.info(
                    "%s: transaction %d (committed %s) is not yet covered by a run",
                    name,
                    state.owed.transaction,
                    state.owed.committed_at.isoformat(timespec="seconds"),
                )

    def stamp(
        self, transaction: int, published_at: datetime, documents: int
    ) -> Mapping[str, JsonValue]:
        return {
            name: memory.stamp(transaction, published_at, documents)
            for name, memory in self.memories.items()
        }

    def _stood(self, commit: Commit) -> None:
        if commit.documents > 0 and commit.published_at is not None:
            for memory in self.memories.values():
                memory.stood(commit.sequence, commit.published_at)

    def bind(self, action: TriggerAction) -> tuple[TriggerMemory | None, LedgerRecorder | None]:
        """What :class:`~afterload.triggers.thread.TriggerThread` gives each trigger."""
        memory = self.memories[trigger_name(action)]
        if self.ledger is None:
            return memory, None
        recorder = LedgerRecorder(
            self.ledger,
            memory,
            materialization=self.core.name,
            job=action.label,
            mode=getattr(action, "mode", None),
            clock=self.clock,
            follow_every=self.follow_every,
        )
        return memory, recorder

    def pending(self, action: TriggerAction) -> bool:
        return self.memories[trigger_name(action)].state.pending

    def initial_fire(self, trigger: JobTrigger) -> bool:
        """``on_start: always`` fires at every start; ``pending`` only when data is owed."""
        if getattr(trigger.action, "on_start", "always") != "pending":
            return True
        owed = self.pending(trigger.action)
        if not owed:
            log.info(
                "%s: every committed transaction is covered; no start-up fire",
                trigger.action.label,
            )
        return owed
