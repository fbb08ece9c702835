"""The run ledger: one row per trigger decision, kept in the destination beside the data.

Both SQL destinations store it in ``_afterload_runs`` with the same columns; this module holds
the row's typed shape, the interface the triggers write through, and the SQL both share (only
the parameter marker differs). The destination owns the connection and takes its own turn, so
a ledger write never interleaves with a commit.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from afterload.destinations.sql import quote

RUNS = "_afterload_runs"
"""The ledger table's name, in the destination's schema."""

#: Column, SQL type, in order. ``entry`` keys a row (a random hex id: no sequence needed).
COLUMNS: tuple[tuple[str, str], ...] = (
    ("entry", "VARCHAR PRIMARY KEY"),
    ("materialization", "VARCHAR NOT NULL"),
    ("trigger", "VARCHAR NOT NULL"),
    ("job", "VARCHAR NOT NULL"),
    ("run_id", "BIGINT"),
    ("mode", "VARCHAR"),
    ("decision", "VARCHAR NOT NULL"),
    ("covers_transaction", "BIGINT"),
    ("covers_committed_at", "TIMESTAMPTZ"),
    ("created_at", "TIMESTAMPTZ NOT NULL"),
    ("status", "VARCHAR"),
    ("finished_at", "TIMESTAMPTZ"),
    ("url", "VARCHAR"),
)
NAMES = tuple(name for name, _ in COLUMNS)


class LedgerEntry(BaseModel):
    """One row of ``_afterload_runs`` (the triggers' own model of it is
    ``afterload.triggers.records.RunRecord``; triggers know nothing of destinations)."""

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
        return self.run_id is not None and not self.decision.startswith(("skipped", "failed"))

    def values(self) -> list[Any]:
        return [getattr(self, name) for name in NAMES]


@runtime_checkable
class RunLedger(Protocol):
    """What a trigger needs from a destination to keep its ledger (both SQL ones have it)."""

    def record_run(self, entry: LedgerEntry) -> None:
        """Insert one ledger row (its own destination transaction)."""
        ...

    def finish_run(self, entry: str, status: str, finished_at: datetime) -> None:
        """Set how a started run ended."""
        ...

    def read_runs(
        self, materialization: str, *, last: int | None = None, open_only: bool = False
    ) -> list[LedgerEntry]:
        """The newest ``last`` rows (all if None), newest first; ``open_only``: started runs
        whose end is not known yet."""
        ...


@runtime_checkable
class LedgerReader(Protocol):
    """Read-only access to the ledger (both status readers have it)."""

    def read_runs(
        self, materialization: str, *, last: int | None = None, open_only: bool = False
    ) -> list[LedgerEntry]: ...


def create_sql(schema: str) -> str:
    cols = ", ".join(f"{quote(name)} {kind}" for name, kind in COLUMNS)
    return f"CREATE TABLE IF NOT EXISTS {quote(schema)}.{quote(RUNS)} ({cols})"


def insert_sql(schema: str, marker: str) -> str:
    names = ", ".join(quote(n) for n in NAMES)
    marks = ", ".join(marker for _ in NAMES)
    return f"INSERT INTO {quote(schema)}.{quote(RUNS)} ({names}) VALUES ({marks})"


def finish_sql(schema: str, marker: str) -> str:
    return (
        f"UPDATE {quote(schema)}.{quote(RUNS)} SET status = {marker}, finished_at = {marker} "
        f"WHERE entry = {marker}"
    )


def select_sql(schema: str, marker: str, *, last: int | None, open_only: bool) -> str:
    names = ", ".join(quote(n) for n in NAMES)
    where = f"materialization = {marker}"
    if open_only:
        # starts_with, not LIKE: a % would be a parameter marker for psycopg.
        where += " AND run_id IS NOT NULL AND status IS NULL"
        where += " AND NOT starts_with(decision, 'skipped') AND NOT starts_with(decision, 'failed')"
    limit = f" LIMIT {int(last)}" if last is not None else ""
    return (
        f"SELECT {names} FROM {quote(schema)}.{quote(RUNS)} WHERE {where} "
        f"ORDER BY created_at DESC, entry DESC{limit}"
    )


def from_row(row: tuple[Any, ...]) -> LedgerEntry:
    return LedgerEntry(**dict(zip(NAMES, row, strict=True)))
