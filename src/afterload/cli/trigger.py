"""``afterload trigger``: one fire now, honouring mode and cause; ``--wait`` for the run."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from afterload.cli.app import ConfigArg, app, err, fail, load, out, trigger_block, wait_seconds
from afterload.cli.run import EXIT_CODES
from afterload.errors import AfterloadError

if TYPE_CHECKING:
    from afterload.config.load import LoadedConfig


@app.command()
def trigger(
    config: ConfigArg,
    wait: Annotated[bool, typer.Option(help="Wait for the run to end.")] = False,
    timeout: Annotated[str, typer.Option(help="How long --wait waits, e.g. 30m, 1h.")] = "1h",
) -> None:
    """Fire the dbt Cloud job once now, honouring mode and cause.

    With --wait, exit 0 when the run succeeds, 1 on error, 2 when cancelled, 3 on timeout.
    """
    wait_for = wait_seconds(timeout)
    loaded = load(config)
    if loaded.config.dbt_core_trigger is not None and loaded.config.dbt_job_trigger is None:
        raise typer.Exit(trigger_dbt_core(loaded, wait=wait, timeout=wait_for))
    settings = trigger_block(loaded)
    tables = [binding.table for binding in loaded.config.bindings]
    import asyncio

    from afterload.triggers.dbt_cloud.action import DbtCloudAction

    async def go() -> int:
        action = DbtCloudAction(settings, tables=tables)
        try:
            outcome = await action.fire()
            if outcome.kind == "failed":
                err.print(
                    f"[red]✗[/red] {escape(action.label)}: {escape(outcome.message)}", markup=True
                )
                return EXIT_CODES["error"]
            out.print(f"{action.label}: {outcome.message}")
            if outcome.run_id is None:
                return EXIT_CODES["success"]
            out.print(f"run {outcome.run_id}: {outcome.url}", soft_wrap=True)
            if not wait:
                return EXIT_CODES["success"]
            end = await action.wait(outcome, wait_for)
            out.print(end.message)
            return EXIT_CODES[end.result]
        finally:
            await action.aclose()

    try:
        code = asyncio.run(go())
    except AfterloadError as exc:
        fail(exc)
    raise typer.Exit(code)


def trigger_dbt_core(loaded: LoadedConfig, *, wait: bool, timeout: float) -> int:
    """One dbt Core fire now. dbt is this process's child and must not outlive it, so the
    command always waits for it; ``--wait`` makes its result the exit code (0/1/2/3)."""
    import asyncio

    from afterload.pipeline import dbt_core_action

    async def go() -> int:
        action = dbt_core_action(loaded)
        try:
            outcome = await action.fire()
            if outcome.kind == "failed":
                err.print(
                    f"[red]✗[/red] {escape(action.label)}: {escape(outcome.message)}",
                    soft_wrap=True,
                    markup=True,
                )
                return EXIT_CODES["error"]
            out.print(f"{action.label}: {outcome.message}", soft_wrap=True, highlight=False)
            if outcome.run_id is None:
                return EXIT_CODES["success"]
            end = await action.wait(outcome, timeout)
            out.print(end.message, soft_wrap=True, highlight=False)
            return EXIT_CODES[end.result] if wait else EXIT_CODES["success"]
        finally:
            await action.aclose()

    try:
        return asyncio.run(go())
    except AfterloadError as exc:
        fail(exc)
