"""``afterload check``: the config, the destination, the dbt job — one ✓/✗ line each."""

from __future__ import annotations

import asyncio

import typer

from afterload.cli.app import ConfigArg, app, fail, out
from afterload.config.load import LoadedConfig, load_config
from afterload.destinations.factory import probe_destination
from afterload.errors import AfterloadError, ConfigError
from afterload.pipeline import dbt_core_action
from afterload.triggers.dbt_cloud.action import DbtCloudAction


@app.command()
def check(config: ConfigArg) -> None:
    """Validate the config, reach the destination, and check access to the dbt Cloud job."""
    try:
        loaded = load_config(config)
    except ConfigError as exc:
        out.print(f"[red]✗[/red] config {config}")
        fail(exc)
    out.print(f"[green]✓[/green] config {config} is valid")
    failed = False
    if loaded.config.destination is not None:
        try:
            found = probe_destination(loaded.config.destination, loaded.base_dir)
        except AfterloadError as exc:
            out.print(f"[red]✗[/red] destination: {exc}", soft_wrap=True, highlight=False)
            failed = True
        else:
            out.print(f"[green]✓[/green] destination: {found}", soft_wrap=True, highlight=False)
    if loaded.config.dbt_core_trigger is not None:
        failed = not check_dbt_core(loaded) or failed
    settings = loaded.config.dbt_job_trigger
    if settings is None:
        if loaded.config.dbt_core_trigger is None:
            out.print("[green]✓[/green] no dbt_job_trigger block: no job will be triggered")
        raise typer.Exit(1 if failed else 0)

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
        raise typer.Exit(1) from None
    out.print(f"[green]✓[/green] {found}", soft_wrap=True)
    raise typer.Exit(1 if failed else 0)


def check_dbt_core(loaded: LoadedConfig) -> bool:
    """``dbt parse`` of the project with its profile: proves both without writing anything
    but dbt's own target/ folder (the warehouse is not opened)."""
    action = dbt_core_action(loaded)
    result = asyncio.run(action.runner.check())
    mark = "[green]✓[/green]" if result.ok else "[red]✗[/red]"
    out.print(f"{mark} {result.message} ({result.seconds:.1f}s)", soft_wrap=True, highlight=False)
    return result.ok
