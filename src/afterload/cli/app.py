"""The typer app, logging, and how an error ends a command: one sentence, an exit code."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.logging import RichHandler

from afterload import __version__
from afterload.config.load import LoadedConfig, load_config
from afterload.durations import parse_duration
from afterload.errors import AfterloadError, ConfigError
from afterload.triggers.dbt_cloud.config import DbtJobTrigger

app = typer.Typer(
    name="afterload",
    help="Land JSON streams in DuckDB or PostgreSQL, exactly once, and keep dbt Cloud jobs fresh.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console()
err = Console(stderr=True)

ConfigArg = Annotated[
    Path, typer.Argument(help="The materialization's config file (YAML or JSON).")
]

#: ``trigger --wait`` exit codes: success, error, cancelled, timeout.
EXIT_SUCCESS, EXIT_ERROR, EXIT_CANCELLED, EXIT_TIMEOUT = 0, 1, 2, 3


def setup_logging(verbose: bool = False) -> None:
    handler = RichHandler(console=err, show_path=False, rich_tracebacks=False, markup=False)
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(message)s",
        datefmt="%H:%M:%S",
        handlers=[handler],
        force=True,
    )
    # httpx logs every request URL at INFO; ours say what matters.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("stamina").setLevel(logging.ERROR)


def fail(error: AfterloadError) -> NoReturn:
    if isinstance(error, ConfigError):
        for line in error.problems:
            err.print(f"[red]error:[/red] {line}", highlight=False, markup=True, soft_wrap=True)
    else:
        err.print(f"[red]error:[/red] {error}", highlight=False, soft_wrap=True)
    raise typer.Exit(error.exit_code)


def load(path: Path) -> LoadedConfig:
    try:
        return load_config(path)
    except ConfigError as exc:
        fail(exc)


def trigger_block(loaded: LoadedConfig) -> DbtJobTrigger:
    jobs = loaded.config.dbt_jobs()
    if not jobs:
        fail(ConfigError([f"{loaded.path}: dbt_job_trigger: the config has no such block"]))
    return jobs[0]


def wait_seconds(timeout: str) -> float:
    """``--timeout`` in seconds; a bad duration ends the command like a config error."""
    try:
        return parse_duration(timeout).total_seconds()
    except ValueError as exc:
        fail(ConfigError([f"--timeout: {exc}"]))


def _version(value: bool) -> None:
    if value:
        out.print(f"afterload {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False,
) -> None:
    setup_logging(verbose)
