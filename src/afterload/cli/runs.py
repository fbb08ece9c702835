"""``afterload runs``: the run ledger (``_afterload_runs``) of a materialization."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.markup import escape

from afterload.cli.app import ConfigArg, app, err, load, out, say_error
from afterload.errors import AfterloadError


@app.command()
def runs(
    config: ConfigArg,
    last: Annotated[int, typer.Option("--last", min=1, help="Show the newest N rows.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON array, newest first.")] = False,
) -> None:
    """The trigger's run ledger: every decision, the data it covers, how each run ended."""
    from afterload.cli.ledger_view import (
        LedgerUnavailable,
        entry_json,
        ledger_table,
        print_uncut,
        read_ledger,
    )

    loaded = load(config)
    try:
        _, rows = read_ledger(loaded, last)
    except LedgerUnavailable as exc:
        err.print(
            f"[red]error:[/red] {escape(str(exc))}; the ledger cannot be read while it runs",
            highlight=False,
            markup=True,
            soft_wrap=True,
        )
        raise typer.Exit(1) from None
    except AfterloadError as exc:
        say_error(str(exc), err)
        raise typer.Exit(exc.exit_code) from None
    if as_json:
        print(json.dumps([entry_json(r) for r in rows], indent=2))
        return
    if not rows:
        out.print(
            f"materialization {loaded.name}: no trigger decisions recorded yet", highlight=False
        )
        return
    print_uncut(ledger_table(rows, f"run ledger of {loaded.name} (newest {len(rows)})"), out)
