"""``afterload check``: the config, the destination, the dbt job — one ✓/✗ line each."""

from __future__ import annotations

import asyncio

import typer

from afterload.cli.app import ConfigArg, app, fail, out
from afterload.config.load import load_config
from afterload.destinations.factory import probe_destination
from afterload.errors import AfterloadError, ConfigError
from afterload.triggers.dbt_cloud.action import DbtCloudAction
from afterload.triggers.dbt_cloud.client import DbtCloudClient


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
    settings = loaded.config.dbt_job_trigger
    if settings is None:
        out.print("[green]✓[/green] no dbt_job_trigger block: no job will be triggered")
        raise typer.Exit(1 if failed else 0)

    async def reach() -> str:
        action = DbtCloudAction(settings, client=DbtCloudClient.interactive(settings.target()))
        try:
            return await action.check()
        finally:
            await action.client.aclose()

    try:
        found = asyncio.run(reach())
    except AfterloadError as exc:
        out.print(f"[red]✗[/red] dbt Cloud job {settings.job_id}: {exc}", soft_wrap=True)
        raise typer.Exit(1) from None
    out.print(f"[green]✓[/green] {found}", soft_wrap=True)
    raise typer.Exit(1 if failed else 0)
