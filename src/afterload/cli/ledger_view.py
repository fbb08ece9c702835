"""What ``status`` and ``runs`` read from the run ledger and the checkpoint's trigger states,
as plain data (for ``--json``) and as rich tables. Kept apart from the binding status, so the
two halves of ``status`` stay independent."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.table import Table

from afterload.config.load import LoadedConfig
from afterload.destinations.base import LockedError, Recovered
from afterload.destinations.factory import open_status
from afterload.destinations.ledger import LedgerEntry, LedgerReader
from afterload.durable_triggers import to_record
from afterload.triggers.memory import TriggerState, recover

STATUS_ROWS = 500
"""Ledger rows ``status`` reads to find the run covering the newest data."""


class LedgerUnavailable(Exception):
    """The committed state cannot be read now (a DuckDB file held by a running process)."""


def read_ledger(
    loaded: LoadedConfig, last: int | None
) -> tuple[Recovered | None, list[LedgerEntry]]:
    """The committed state and the newest ``last`` ledger rows (newest first)."""
    try:
        reader = open_status(loaded.config.destination, loaded.base_dir)
    except LockedError as exc:
        raise LedgerUnavailable(str(exc)) from None
    if reader is None:
        return None, []
    try:
        info = reader.read_checkpoint(loaded.name)
        rows = reader.read_runs(loaded.name, last=last) if isinstance(reader, LedgerReader) else []
    finally:
        reader.close()
    return info, rows


def _iso(when: datetime | None) -> str | None:
    return None if when is None else when.astimezone(UTC).isoformat(timespec="seconds")


def entry_json(entry: LedgerEntry) -> dict[str, Any]:
    return entry.model_dump(mode="json", exclude={"materialization"})


def trigger_states(
    info: Recovered | None, rows: list[LedgerEntry]
) -> dict[str, tuple[TriggerState, list[LedgerEntry]]]:
    """Each trigger's state as a restart would see it, with its ledger rows."""
    # dbt jobs' states only: ``webhook:NAME`` entries are pending windows (webhook_view.py).
    names = [n for n in (info.checkpoint.triggers if info is not None else ()) if ":" not in n]
    names += [r.trigger for r in rows if r.trigger not in names]
    result = {}
    for name in names:
        mine = [r for r in rows if r.trigger == name]
        state = recover(
            info.checkpoint.triggers.get(name) if info is not None else None,
            transactions=info.transactions if info is not None else 0,
            committed_at=info.committed_at if info is not None else None,
            ledger=[to_record(r) for r in mine],
        )
        result[name] = (state, mine)
    return result


def _covering(state: TriggerState, rows: list[LedgerEntry]) -> LedgerEntry | None:
    """The oldest started run covering the newest data (rows are newest first)."""
    if state.data is None:
        return None
    best = None
    for row in rows:
        # A run that covers only once it succeeds (dbt Core): a failed one covers nothing.
        counts = not state.on_success or row.status == "success"
        if row.started and counts and (row.covers_transaction or 0) >= state.data.transaction:
            best = row
    return best


def trigger_status_json(
    info: Recovered | None, rows: list[LedgerEntry], now: datetime
) -> list[dict[str, Any]]:
    """Per trigger: newest data, whether it is owed, the run covering it, the freshness lag."""
    out = []
    for name, (state, mine) in trigger_states(info, rows).items():
        run = _covering(state, mine)
        fresh = state.succeeded
        out.append(
            {
                "trigger": name,
                "job": mine[0].job if mine else None,
                "newest_data": None
                if state.data is None
                else {
                    "transaction": state.data.transaction,
                    "committed_at": _iso(state.data.committed_at),
                },
                "pending": state.pending,
                "covering_run": None if run is None else entry_json(run),
                "fresh_through": None if fresh is None else _iso(fresh.committed_at),
                "freshness_lag_seconds": None
                if fresh is None
                else round((now - fresh.committed_at).total_seconds(), 3),
            }
        )
    return out


def _lag(seconds: float | None) -> str:
    if seconds is None:
        return "no successful run yet"
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


def print_trigger_status(items: list[dict[str, Any]], console: Console) -> None:
    """One line per trigger: ``status``'s trigger half."""
    for item in items:
        data = item["newest_data"]
        what = (
            "no data committed yet"
            if data is None
            else f"newest data: transaction {data['transaction']} at {data['committed_at']}"
        )
        run = item["covering_run"]
        if run is None:
            covered = "not yet covered by a run" if item["pending"] else "no run needed"
        else:
            outcome = run["status"] or "running or not yet followed"
            covered = f"covered by run {run['run_id']} ({outcome})"
        console.print(
            f"{item['trigger']}: {what}, {covered}; "
            f"freshness lag {_lag(item['freshness_lag_seconds'])}",
            highlight=False,
            soft_wrap=True,
        )


def _short(when: datetime | None, *, date: bool) -> str:
    if when is None:
        return "-"
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S" if date else "%H:%M:%S")


def ledger_table(rows: list[LedgerEntry], title: str) -> Table:
    """Oldest first, like a log; times in UTC (``--json`` has them in full). Cells are never
    cut: each column is as wide as its longest cell (see :func:`print_uncut`)."""
    table = Table(title=f"{title}, times UTC")
    cells = []
    for row in reversed(rows):
        covers = (
            "-"
            if row.covers_transaction is None
            else f"txn {row.covers_transaction} ({_short(row.covers_committed_at, date=False)})"
        )
        cells.append(
            (
                _short(row.created_at, date=True),
                row.job,
                "-" if row.run_id is None else str(row.run_id),
                row.mode or "-",
                row.decision,
                covers,
                row.status or ("-" if not row.started else "…"),
                _short(row.finished_at, date=False),
            )
        )
    names = ("created", "trigger", "run", "mode", "decision", "covers", "status", "finished")
    for i, col in enumerate(names):
        width = max([len(col), *(len(c[i]) for c in cells)])
        table.add_column(
            col, justify="right" if col == "run" else "left", no_wrap=True, min_width=width
        )
    for row_cells in cells:
        table.add_row(*row_cells)
    return table


def print_uncut(table: Table, console: Console) -> None:
    """Print a table at the width its columns need, wider than the console if it must be
    (``print`` alone would shrink and cut the cells to the console's width)."""
    needed = sum((c.min_width or 0) + 3 for c in table.columns) + 1
    width = console.width
    console.width = max(width, needed)
    try:
        console.print(table)
    finally:
        console.width = width
