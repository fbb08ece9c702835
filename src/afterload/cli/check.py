"""``afterload check``: the config, the destination, the dbt job — one ✓/✗ line each."""

from __future__ import annotations

import asyncio

import typer
from rich.console import Console

from afterload.cli.app import ConfigArg, app, fail, out
from afterload.config.load import LoadedConfig, load_config
from afterload.destinations.factory import duckdb_path, probe_destination
from afterload.errors import AfterloadError, ConfigError
from afterload.preflight import preflight
from afterload.triggers.dbt_cloud.action import DbtCloudAction
from afterload.triggers.dbt_cloud.config import DbtJobTrigger


def _preflight(loaded: LoadedConfig) -> bool:
    """Print what ``run`` would refuse (✗) and what it will do (✓); whether anything failed.

    A config without bindings but with a trigger is one ``afterload trigger`` uses: ``run``
    would refuse it, which is said, but it does not fail the check.
    """
    failed = False
    trigger_only = not loaded.config.bindings and loaded.config.dbt_job_trigger is not None
    for finding in preflight(loaded):
        if finding.ok:
            mark = "[green]✓[/green]"
        elif trigger_only and finding.subject == "bindings":
            mark = "[yellow]![/yellow]"
            finding_text = f"{finding.text} (`afterload trigger` works with this config)"
            out.print(f"{mark} {finding_text}", soft_wrap=True, highlight=False)
            continue
        else:
            out.print(f"[red]✗[/red] {finding.text}", soft_wrap=True, highlight=False)
            failed = True
            continue
        out.print(f"{mark} {finding.subject}: {finding.text}", soft_wrap=True, highlight=False)
    return failed


@app.command()
def check(config: ConfigArg) -> None:
    """Validate the config, reach the destination, and check access to the dbt Cloud job."""
    try:
        loaded = load_config(config)
    except ConfigError as exc:
        out.print(f"[red]✗[/red] config {config}")
        fail(exc)
    out.print(f"[green]✓[/green] config {config} is valid")
    failed = _preflight(loaded)
    path = duckdb_path(loaded.config.destination, loaded.base_dir)
    if loaded.config.destination is not None and (path is None or path.exists()):
        try:
            found = probe_destination(loaded.config.destination, loaded.base_dir)
        except AfterloadError as exc:
            out.print(f"[red]✗[/red] destination: {exc}", soft_wrap=True, highlight=False)
            failed = True
        else:
            out.print(f"[green]✓[/green] destination: {found}", soft_wrap=True, highlight=False)
    jobs = loaded.config.dbt_jobs()
    if not jobs:
        if not loaded.config.trigger_cleared:
            out.print("[green]✓[/green] no dbt_job_trigger block: no job will be triggered")
        raise typer.Exit(1 if failed else 0)
    for settings in jobs:
        failed = not _reach_job(settings, out) or failed
    raise typer.Exit(1 if failed else 0)


def _reach_job(settings: DbtJobTrigger, out: Console) -> bool:
    """One ✓/✗ line for one job; False when it is not usable."""

    async def reach() -> str:
        action = DbtCloudAction(settings)
        try:
            return await action.check()
        finally:
            await action.aclose()

    try:
        found = asyncio.run(reach())
    except AfterloadError as exc:
        out.print(f"[red]✗[/red] dbt Cloud job {settings.job_id}: {exc}", soft_wrap=True)
        return False
    out.print(f"[green]✓[/green] {found}", soft_wrap=True)
    return True
