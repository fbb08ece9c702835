"""What ``afterload status`` shows: the binding status read from the committed checkpoint,
its stable ``--json`` shape (pydantic models), the table, and the dbt Cloud job's active runs.
Kept apart from the command (:mod:`afterload.cli.status`) so building the command line imports
none of it (ARCHITECTURE.md, start-up)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel
from rich.console import Console
from rich.table import Table

from afterload.cli.ledger_view import (
    STATUS_ROWS,
    LedgerUnavailable,
    print_trigger_status,
    read_ledger,
    trigger_status_json,
)
from afterload.cli.webhook_view import print_webhook_status, webhook_status_json
from afterload.config.load import LoadedConfig
from afterload.core.checkpoint import Checkpoint
from afterload.destinations.base import LockedError, Recovered, StatusReader
from afterload.destinations.factory import duckdb_path, open_status
from afterload.errors import AfterloadError
from afterload.ndjson.sources import Source

if TYPE_CHECKING:
    from afterload.triggers.dbt_cloud.models import Run


def _size(n: int | float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def _ago(when: datetime) -> str:
    seconds = (datetime.now(UTC) - when).total_seconds()
    if seconds < 120:
        return f"{seconds:.0f}s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m ago"
    return f"{seconds / 3600:.1f}h ago"


def _read(loaded: LoadedConfig) -> tuple[str, Recovered | None, dict[str, int | None], str | None]:
    """Where, the committed state, row counts, and a note when the state cannot be read."""
    config = loaded.config
    path = duckdb_path(config.destination, loaded.base_dir)
    where = str(path) if path is not None else ""
    try:
        reader = _open_when_free(loaded)
    except LockedError as exc:
        note = f"{exc}; committed offsets and row counts cannot be read while it runs"
        return where, None, {}, note
    if reader is None:
        return where, None, {}, f"{path} does not exist yet: nothing was committed"
    try:
        info = reader.read_checkpoint(loaded.name)
        counts = {b.table: reader.row_count(b.table) for b in config.bindings}
    finally:
        reader.close()
    return reader.name, info, counts, None


#: A following ``afterload run`` holds a DuckDB file only while it commits: try this long.
FREE_WITHIN = 3.0


def _open_when_free(loaded: LoadedConfig) -> StatusReader | None:
    """Open the committed state, waiting up to :data:`FREE_WITHIN` for a commit to end."""
    deadline = time.monotonic() + FREE_WITHIN
    while True:
        try:
            return open_status(loaded.config.destination, loaded.base_dir)
        except LockedError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.05)


NAME_WIDTH = 16
"""Names longer than this may fold onto more lines in the table (they are never cut)."""


class BindingStatus(BaseModel):
    """One binding's row of ``status`` (``status --json`` emits these keys)."""

    binding: str
    source: str
    files: int | None
    """Files the glob matches; None for stdin."""
    committed_bytes: int | None
    """Bytes committed over the binding's files; None when the checkpoint cannot be read."""
    source_bytes: int | None
    """The files' size now; None for stdin."""
    lines: int | None
    rows: int | None
    """Rows in the table; None when the table cannot be read (or does not exist yet)."""


class RunStatus(BaseModel):
    id: int
    status: str
    url: str | None


class JobStatus(BaseModel):
    job_id: int
    active_runs: list[RunStatus] | None
    """None when the runs could not be listed (``error`` says why)."""
    error: str | None = None


class MaterializationStatus(BaseModel):
    """Everything ``status`` shows; the stable shape of ``status --json``."""

    materialization: str
    destination: str
    note: str | None
    """Why the committed state could not be read (the file is held, nothing committed yet)."""
    last_commit: datetime | None
    transactions: int | None
    bindings: list[BindingStatus]
    dbt_job: JobStatus | None
    triggers: list[dict[str, Any]]
    """Per trigger (see the README's run ledger): newest data, pending, the covering run,
    fresh_through and freshness_lag_seconds; empty while the ledger cannot be read."""


def collect_status(loaded: LoadedConfig) -> MaterializationStatus:
    config = loaded.config
    where, info, counts, note = _read(loaded)
    checkpoint = info.checkpoint if info is not None else Checkpoint()
    bindings = []
    for binding in config.bindings:
        positions = dict(checkpoint.binding(binding.table).files)
        source = (
            Source(binding.source, loaded.base_dir, positions) if binding.source != "-" else None
        )
        sizes = [c.size() or 0 for c in source.cursors.values()] if source is not None else None
        bindings.append(
            BindingStatus(
                binding=binding.table,
                source=binding.source,
                files=len(sizes) if sizes is not None else None,
                committed_bytes=sum(p.offset for p in positions.values()) if info else None,
                source_bytes=sum(sizes) if sizes is not None else None,
                lines=sum(p.line for p in positions.values()) if info else None,
                rows=counts.get(binding.table),
            )
        )
    return MaterializationStatus(
        materialization=loaded.name,
        destination=where,
        note=note,
        last_commit=info.committed_at if info is not None else None,
        transactions=info.transactions if info is not None else None,
        bindings=bindings,
        dbt_job=_job_status(loaded) if config.dbt_job_trigger is not None else None,
        triggers=_trigger_items(loaded),
    )


def _trigger_items(loaded: LoadedConfig) -> list[dict[str, Any]]:
    """The trigger half of ``status``; empty while the ledger cannot be read (the binding half
    already says why the committed state cannot be read)."""
    try:
        info, rows = read_ledger(loaded, STATUS_ROWS)
    except (LedgerUnavailable, AfterloadError):
        return []
    return [
        *trigger_status_json(info, rows, datetime.now(UTC)),
        *webhook_status_json(loaded, info),
    ]


def print_status(loaded: LoadedConfig, console: Console, *, as_json: bool = False) -> int:
    state = collect_status(loaded)
    if as_json:
        console.out(state.model_dump_json(indent=2), highlight=False)
        return 0
    # Numbers never shrink (no_wrap at their full width); names fold onto more lines, never
    # cut; a console too narrow for that gets a wider table rather than a cut one.
    table = Table(title=f"materialization {state.materialization} → {state.destination}")
    for col in ("binding", "source"):
        longest = max((len(getattr(b, col)) for b in state.bindings), default=0)
        table.add_column(col, overflow="fold", min_width=max(len(col), min(longest, NAME_WIDTH)))
    for col in ("files", "committed", "source size", "lines", "rows"):
        table.add_column(col, justify="right", no_wrap=True, min_width=len(col))
    for b in state.bindings:
        share = ""
        if b.committed_bytes is not None and b.source_bytes:
            share = f" ({b.committed_bytes / b.source_bytes:.0%})"
        cells = [
            str(b.files) if b.files is not None else "stdin",
            f"{_size(b.committed_bytes)}{share}" if b.committed_bytes is not None else "?",
            _size(b.source_bytes) if b.source_bytes is not None else "-",
            f"{b.lines:,}" if b.lines is not None else "?",
            f"{b.rows:,}" if b.rows is not None else "-",
        ]
        for column, cell in zip(table.columns[2:], cells, strict=True):
            column.min_width = max(column.min_width or 0, len(cell))
        table.add_row(b.binding, b.source, *cells)
    needed = sum((c.min_width or 0) + 3 for c in table.columns) + 1
    width = console.width
    console.width = max(width, needed)  # print() alone clamps to the console's width
    try:
        console.print(table)
    finally:
        console.width = width
    if state.note:
        console.print(state.note, highlight=False, soft_wrap=True)
    if state.last_commit is not None:
        console.print(
            f"last commit: {state.last_commit.isoformat(timespec='seconds')} "
            f"({_ago(state.last_commit)}), {state.transactions} transactions",
            highlight=False,
        )
    elif state.transactions is not None:
        console.print("no transaction committed yet", highlight=False)
    print_trigger_status([t for t in state.triggers if t.get("kind") != "webhook"], console)
    print_webhook_status([t for t in state.triggers if t.get("kind") == "webhook"], console)
    if state.dbt_job is not None:
        _show_runs(state.dbt_job, console)
    config = loaded.config
    if config.dbt_core_trigger is not None:
        from afterload.triggers.dbt_core.locks import RunSlot

        project = config.dbt_core_trigger.project_dir
        holder = RunSlot(project).holder()
        doing = f"dbt (pid {holder}) is running" if holder else "no dbt running"
        console.print(f"dbt Core project {project}: {doing}", highlight=False, soft_wrap=True)
    return 0


def _job_status(loaded: LoadedConfig) -> JobStatus:
    import asyncio

    from afterload.triggers.dbt_cloud.client import DbtCloudClient

    settings = loaded.config.dbt_job_trigger
    assert settings is not None

    async def active() -> list[Run]:
        async with DbtCloudClient.interactive(settings.target()) as client:
            return await client.list_active_runs()

    try:
        runs = asyncio.run(active())
    except AfterloadError as exc:
        return JobStatus(job_id=settings.job_id, active_runs=None, error=str(exc))
    return JobStatus(
        job_id=settings.job_id,
        active_runs=[RunStatus(id=r.id, status=r.status_humanized, url=r.href) for r in runs],
    )


def _show_runs(job: JobStatus, console: Console) -> None:
    if job.active_runs is None:
        console.print(
            f"dbt job {job.job_id}: cannot list runs ({job.error})", highlight=False, soft_wrap=True
        )
        return
    if not job.active_runs:
        console.print(f"dbt job {job.job_id}: no active runs", highlight=False)
        return
    for run in job.active_runs:
        link = f" {run.url}" if run.url else ""
        console.print(
            f"dbt job {job.job_id}: run {run.id} is {run.status}{link}",
            highlight=False,
            soft_wrap=True,
        )
