"""What a trigger owes, kept with the data: a pure state and the thread-safe holder around it.

Each commit writes every trigger's state into the checkpoint's ``triggers`` (same destination
transaction as the rows): the newest transaction that stored documents, and the newest one a
run created after it covers. A fire records its run in the ledger as soon as dbt answers, so
after a crash the state is the checkpoint's, brought up to date by the ledger: data is
*pending* when the newest data transaction is newer than every run that covers it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from datetime import datetime

from pydantic import BaseModel, ConfigDict, JsonValue, ValidationError

from afterload.triggers.records import RunRecord


class Mark(BaseModel):
    """One committed transaction: its number (the destination's count) and commit time."""

    model_config = ConfigDict(frozen=True)

    transaction: int
    committed_at: datetime


class TriggerState(BaseModel):
    """A trigger's durable state, as committed in ``Checkpoint.triggers[name]``."""

    model_config = ConfigDict(frozen=True)

    data: Mark | None = None
    """The newest transaction that stored documents."""
    covered: Mark | None = None
    """The newest data transaction a run created after it covers."""
    run_id: int | None = None
    """That run."""
    owed: Mark | None = None
    """``data`` while no run covers it, else None (written out for a reader of the table)."""
    succeeded: Mark | None = None
    """The newest data transaction covered by a run that ended in success (freshness)."""
    on_success: bool = False
    """A run covers data only once it succeeded (dbt Core): a run started and then failed or
    killed leaves the data owed."""

    @property
    def pending(self) -> bool:
        if self.data is None:
            return False
        return self.covered is None or self.covered.transaction < self.data.transaction

    def settled(self) -> TriggerState:
        """The same state with ``owed`` derived from the rest."""
        return self.model_copy(update={"owed": self.data if self.pending else None})

    def with_data(self, mark: Mark) -> TriggerState:
        if self.data is not None and self.data.transaction >= mark.transaction:
            return self
        return self.model_copy(update={"data": mark}).settled()

    def with_run(self, mark: Mark, run_id: int | None) -> TriggerState:
        if self.covered is not None and self.covered.transaction >= mark.transaction:
            return self
        return self.model_copy(update={"covered": mark, "run_id": run_id}).settled()

    def with_success(self, mark: Mark) -> TriggerState:
        if self.succeeded is not None and self.succeeded.transaction >= mark.transaction:
            return self
        return self.model_copy(update={"succeeded": mark})

    def to_json(self) -> JsonValue:
        value: JsonValue = self.settled().model_dump(mode="json")
        return value

    @classmethod
    def from_json(cls, value: JsonValue) -> TriggerState | None:
        """A stored state; None when there is none or it is not ours (then: unknown)."""
        if not isinstance(value, dict):
            return None
        try:
            return cls.model_validate(value)
        except ValidationError:
            return None


def recover(
    stored: JsonValue,
    *,
    transactions: int,
    committed_at: datetime | None,
    ledger: Iterable[RunRecord],
    on_success: bool = False,
) -> TriggerState:
    """The state after a restart: the checkpoint's, brought up to date by the ledger's runs.

    A materialization that committed before triggers kept state (nothing stored, yet
    transactions exist) is taken as owing its last commit: a run too many, never one too few.
    """
    state = TriggerState.from_json(stored)
    if state is None:
        state = TriggerState()
        if transactions > 0 and committed_at is not None:
            state = state.with_data(Mark(transaction=transactions, committed_at=committed_at))
    if on_success and not state.on_success:
        # Kept by a version that counted a started run as cover: only successes count.
        state = state.model_copy(
            update={"on_success": True, "covered": state.succeeded, "run_id": None}
        )
    for entry in ledger:
        if entry.covers_transaction is None or entry.covers_committed_at is None:
            continue
        mark = Mark(transaction=entry.covers_transaction, committed_at=entry.covers_committed_at)
        if entry.started and (not state.on_success or entry.status == "success"):
            state = state.with_run(mark, entry.run_id)
        if entry.status == "success":
            state = state.with_success(mark)
    return state.settled()


class TriggerMemory:
    """The state of one trigger, shared by the commit path and the trigger's event loop."""

    def __init__(self, name: str, *, on_success: bool = False) -> None:
        self.name = name
        self.on_success = on_success
        self._lock = threading.Lock()
        self._state = TriggerState(on_success=on_success)

    def __repr__(self) -> str:
        return f"TriggerMemory({self.name!r}, {self.state!r})"

    @property
    def state(self) -> TriggerState:
        with self._lock:
            return self._state

    def load(self, state: TriggerState) -> None:
        with self._lock:
            self._state = state.model_copy(update={"on_success": self.on_success})

    def stamp(self, transaction: int, committed_at: datetime, documents: int) -> JsonValue:
        """The state to commit with ``transaction`` (which owes a run if it stores documents)."""
        with self._lock:
            state = self._state
            if documents > 0:
                state = state.with_data(Mark(transaction=transaction, committed_at=committed_at))
            return state.to_json()

    def stood(self, transaction: int, committed_at: datetime) -> None:
        """A transaction that stored documents committed."""
        mark = Mark(transaction=transaction, committed_at=committed_at)
        with self._lock:
            self._state = self._state.with_data(mark)

    def covering(self) -> Mark | None:
        """What a fire starting now covers: the newest data that committed."""
        with self._lock:
            return self._state.data

    def covered(self, mark: Mark, run_id: int | None) -> None:
        with self._lock:
            self._state = self._state.with_run(mark, run_id)

    def succeeded(self, mark: Mark) -> None:
        with self._lock:
            self._state = self._state.with_success(mark)
