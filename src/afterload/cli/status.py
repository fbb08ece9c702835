"""``afterload status``: how far each binding got, from the committed checkpoint."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from afterload.cli.app import ConfigArg, app, load, out, say_error
from afterload.errors import AfterloadError

if TYPE_CHECKING:
    from afterload.config.load import LoadedConfig


def materialization_status(loaded: LoadedConfig, console: Console, *, as_json: bool = False) -> int:
    """Print the status table (or JSON); 0 when it could be read, 1 on an error."""
    from afterload.cli.status_view import print_status

    try:
        return print_status(loaded, console, as_json=as_json)
    except AfterloadError as exc:
        say_error(str(exc), console)
        return exc.exit_code


@app.command()
def status(
    config: ConfigArg,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON object with stable keys (see README).")
    ] = False,
) -> None:
    """Per binding: offset reached against the source size, last commit, rows, active dbt runs;
    per trigger: newest data, the run covering it, the freshness lag."""
    raise typer.Exit(materialization_status(load(config), out, as_json=as_json))
