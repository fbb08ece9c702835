"""``afterload status``: how far each binding got, from the committed checkpoint."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.table import Table

from afterload.config import LoadedConfig
from afterload.destinations.base import CheckpointInfo, LockedError
from afterload.errors import AfterloadError
from afterload.runtime import materialization_name
from afterload.sources import Position, Source


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


def probe_destination(loaded: LoadedConfig) -> str:
    """Reach the destination without writing; a sentence saying what was found.

    Raises :class:`AfterloadError` with one sentence when it cannot be reached. A DuckDB file
    held by a running ``afterload run`` is fine: that is the normal state of a live one.
    """
    dest = loaded.config.destination
    if dest is not None and dest.postgres is not None:
        from afterload.destinations.postgres import PostgresStatus

        pg = PostgresStatus.from_config(dest.postgres)
        pg.close()
        return f"{pg.name} is reachable"
    from afterload.destinations.duckdb import DuckDBStatus

    path = loaded.resolve(dest.duckdb.path if dest and dest.duckdb else "afterload.duckdb")
    if not path.exists():
        if not path.parent.is_dir():
            raise AfterloadError(f"{path}: the folder {path.parent} does not exist")
        return f"{path} will be created at the first commit"
    try:
        DuckDBStatus(path, "main").con.close()
    except LockedError as exc:
        return f"{path} is in use: {exc}"
    return f"{path} opens"


def _status(loaded: LoadedConfig, console: Console) -> int:
    from afterload.destinations.duckdb import DuckDBStatus

    config = loaded.config
    name = materialization_name(loaded)
    dest = config.destination
    info: CheckpointInfo | None = None
    counts: dict[str, int | None] = {}
    note = None
    if dest is not None and dest.postgres is not None:
        from afterload.destinations.postgres import PostgresStatus

        pg = PostgresStatus.from_config(dest.postgres)
        where = pg.name
        try:
            info = pg.read_checkpoint(name)
            counts = {b.table: pg.row_count(b.table) for b in config.bindings}
        finally:
            pg.close()
    else:
        path = loaded.resolve(dest.duckdb.path if dest and dest.duckdb else "afterload.duckdb")
        schema = dest.duckdb.schema_ if dest and dest.duckdb else "main"
        where = str(path)
        if not path.exists():
            note = f"{path} does not exist yet: nothing was committed"
        else:
            try:
                reader = DuckDBStatus(path, schema)
            except LockedError as exc:
                note = f"{exc}; committed offsets and row counts cannot be read while it runs"
            else:
                try:
                    info = reader.read_checkpoint(name)
                    counts = {b.table: reader.row_count(b.table) for b in config.bindings}
                finally:
                    reader.close()
    checkpoint: dict[str, Any] = info.checkpoint if info is not None else {}
    table = Table(title=f"materialization {name} → {where}")
    for col in ("binding", "source", "files", "committed", "source size", "lines", "rows"):
        table.add_column(col, justify="right" if col not in ("binding", "source") else "left")
    for binding in config.bindings:
        entry = checkpoint.get("bindings", {}).get(binding.table, {})
        positions = {k: Position(int(v[0]), int(v[1])) for k, v in entry.get("files", {}).items()}
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
    return 0


def _show_runs(loaded: LoadedConfig, console: Console) -> None:
    from afterload.dbt.cloud import DbtCloudClient

    settings = loaded.config.dbt_job_trigger
    assert settings is not None

    async def active() -> list[Any]:
        async with DbtCloudClient(settings) as client:
            return list(await client.list_active_runs())

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
