"""``afterload demo``: what ``make demo`` runs (needs the ``emulator`` extra)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from afterload.cli.app import app, fail
from afterload.errors import AfterloadError, ConfigError


@app.command()
def demo(
    seconds: Annotated[float, typer.Option(help="How long the generated stream runs.")] = 30.0,
    workdir: Annotated[Path, typer.Option(help="Where the demo writes its files.")] = Path(
        "demo-output"
    ),
) -> None:
    """Show afterload end to end on embedded defaults: no account needed anywhere."""
    try:
        from afterload.demo import run_demo
    except ImportError:
        fail(ConfigError(["the demo needs its extra: pip install 'afterload[emulator]'"]))
    try:
        code = run_demo(Console(), seconds=seconds, workdir=workdir)  # its own colours
    except AfterloadError as exc:
        fail(exc)
    raise typer.Exit(code)
