"""``afterload status``: how far each binding got, from the committed checkpoint."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import typer
from rich.console import Console
from rich.table import Table

from afterload.cli.app import ConfigArg, app, load, out
from afterload.config.load import LoadedConfig
from afterload.core.checkpoint import Checkpoint
from afterload.destinations.base import LockedError, Recovered, StatusReader
from afterload.destinations.factory import duckdb_path, open_status
from afterload.errors import AfterloadError
from afterload.ndjson.sources import Source
from afterload.triggers.dbt_cloud.client import DbtCloudClient
from afterload.triggers.dbt_cloud.models import Run
from afterload.triggers.dbt_core.locks import RunSlot


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n} B"


def _ago(when: datetime) -> str:
    seconds = (datetime.now(UTC) - when).total_seconds()
    if seconds < 120:
        return f"{seconds:.0f}s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m ago"
    return f"{seconds / 3600:.1f}h ago"


def materialization_status(loaded: LoadedConfig, console: Console) -> int:
    """Print the status table; 0 when it could be read, 1 on an error."""
    try:
        return _status(loaded, console)
    except AfterloadError as exc:
        console.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
        return exc.exit_code


@app.command()
def status(config: ConfigArg) -> None:
    """Per binding: offset reached against the source size, last commit, rows, active dbt runs."""
    raise typer.Exit(materialization_status(load(config), out))


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


def _status(loaded: LoadedConfig, console: Console) -> int:
    config = loaded.config
    name = loaded.name
    where, info, counts, note = _read(loaded)
    checkpoint = info.checkpoint if info is not None else Checkpoint()
    table = Table(title=f"materialization {name} → {where}")
    for col in ("binding", "source", "files", "committed", "source size", "lines", "rows"):
        table.add_column(col, justify="right" if col not in ("binding", "source") else "left")
    for binding in config.bindings:
        positions = dict(checkpoint.binding(binding.table).files)
        source = (
            Source(binding.source, loaded.base_dir, positions) if binding.source != "-" else None
        )
        committed = sum(p.offset for p in positions.values())
        lines = sum(p.line for p in positions.values())
        if source is not None:
            sizes = [c.size() or 0 for c in source.cursors.values()]
            total, files = sum(sizes), str(len(sizes))
            share = f" ({committed / total:.0%})" if total else ""
        else:
            total, files, share = 0, "stdin", ""
        rows = counts.get(binding.table)
        table.add_row(
            binding.table,
            binding.source,
            files,
            f"{_size(committed)}{share}" if info is not None else "?",
            _size(total) if source is not None else "-",
            f"{lines:,}" if info is not None else "?",
            f"{rows:,}" if rows is not None else "-",
        )
    console.print(table)
    if note:
        console.print(note, highlight=False, soft_wrap=True)
    if info is not None and info.committed_at is not None:
        console.print(
            f"last commit: {info.committed_at.isoformat(timespec='seconds')} "
            f"({_ago(info.committed_at)}), {info.transactions} transactions",
            highlight=False,
        )
    elif info is not None:
        console.print("no transaction committed yet", highlight=False)
    if config.dbt_job_trigger is not None:
        _show_runs(loaded, console)
    if config.dbt_core_trigger is not None:
        project = config.dbt_core_trigger.project_dir
        holder = RunSlot(project).holder()
        state = f"dbt (pid {holder}) is running" if holder else "no dbt running"
        console.print(f"dbt Core project {project}: {state}", highlight=False, soft_wrap=True)
    return 0


def _show_runs(loaded: LoadedConfig, console: Console) -> None:
    settings = loaded.config.dbt_job_trigger
    assert settings is not None

    async def active() -> list[Run]:
        async with DbtCloudClient(settings.target()) as client:
            return await client.list_active_runs()

    try:
        runs = asyncio.run(active())
    except AfterloadError as exc:
        console.print(f"dbt job {settings.job_id}: cannot list runs ({exc})", highlight=False)
        return
    if not runs:
        console.print(f"dbt job {settings.job_id}: no active runs", highlight=False)
        return
    for run in runs:
        link = f" {run.href}" if run.href else ""
        console.print(
            f"dbt job {settings.job_id}: run {run.id} is {run.status_humanized}{link}",
            highlight=False,
            soft_wrap=True,
        )
