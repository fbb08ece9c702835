"""``afterload flow-connector``: speak Estuary Flow's materialize protocol on stdin/stdout."""

from __future__ import annotations

import typer

from afterload.cli.app import app


@app.command("flow-connector")
def flow_connector() -> None:
    """Run as an Estuary Flow materialization connector (JSON codec; logs on stderr)."""
    from afterload.flow import logs
    from afterload.flow.connector import run_connector

    logs.configure()
    raise typer.Exit(run_connector())
