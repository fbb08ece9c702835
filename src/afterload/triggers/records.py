"""The run ledger as the triggers see it: one record per decision, and the book they write it
in. Triggers know nothing of destinations: the wiring (:mod:`afterload.durable_triggers`)
hands them a :class:`RunBook` backed by the destination's ``_afterload_runs`` table."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field


class RunRecord(BaseModel):
    """One decision of one trigger: what it did, which committed data it covers, how it ended."""

    model_config = ConfigDict(frozen=True)

    entry: str = Field(default_factory=lambda: uuid.uuid4().hex)
    materialization: str
    trigger: str
    """The trigger's name, as it keys the checkpoint's ``triggers`` state."""
    job: str
    """What was triggered, in words (``dbt job 42``)."""
    run_id: int | None = None
    mode: str | None = None
    decision: str
    """``started``, ``skipped for run N``, ``replaced N`` or ``failed: reason``."""
    covers_transaction: int | None = None
    covers_committed_at: datetime | None = None
    created_at: datetime
    status: str | None = None
    """The run's end: ``success``, ``error``, ``cancelled``; None while it runs or unknown."""
    finished_at: datetime | None = None
    url: str | None = None

    @property
    def started(self) -> bool:
        """Whether a run exists because of this decision (started, or replaced others)."""
        return self.run_id is not None and not self.decision.startswith(("skipped", "failed"))


class RunBook(Protocol):
    """Where a trigger keeps its ledger (each call is one small write of its own)."""

    def record_run(self, record: RunRecord) -> None: ...

    def finish_run(self, entry: str, status: str, finished_at: datetime) -> None: ...

    def read_runs(
        self, materialization: str, *, last: int | None = None, open_only: bool = False
    ) -> list[RunRecord]:
        """The newest ``last`` records, newest first; ``open_only``: started runs whose end
        is not known yet."""
        ...
