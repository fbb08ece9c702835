"""The typer app, logging, and how an error ends a command: one sentence, an exit code."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

from afterload import __version__
from afterload.cli import logs
from afterload.durations import parse_duration
from afterload.errors import AfterloadError, ConfigError

if TYPE_CHECKING:
    from afterload.config.load import LoadedConfig
    from afterload.triggers.dbt_cloud.config import DbtJobTrigger


class _Group(TyperGroup):
    """Accepts the global logging options after the subcommand too (``run x.yaml -v``)."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:  # typer's own click Context
        return super().parse_args(ctx, logs.hoist_global_options(args))


app = typer.Typer(
    cls=_Group,
    name="afterload",
    help="Land JSON streams in DuckDB or PostgreSQL, exactly once, and keep dbt Cloud jobs fresh.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console(markup=False)
err = Console(stderr=True, markup=False)
"""Markup off: user text (a key like ``[/id]``) is printed as it is; lines that colour a word
opt in with ``markup=True`` and escape what they quote."""

ConfigArg = Annotated[
    Path, typer.Argument(help="The materialization's config file (YAML or JSON).")
]

#: ``trigger --wait`` exit codes: success, error, cancelled, timeout.
EXIT_SUCCESS, EXIT_ERROR, EXIT_CANCELLED, EXIT_TIMEOUT = 0, 1, 2, 3


def setup_logging(verbose: bool = False, level: str = "info", log_format: str = "text") -> None:
    """Rich on a terminal, one plain line per record in a pipe, or JSON lines."""
    logs.setup_logging(
        "debug" if verbose else level, "json" if log_format == "json" else "text", console=err
    )


def say_error(line: str, console: Console | None = None) -> None:
    """``error: line`` on stderr; a JSON record when logs are JSON (a log pipeline reads one
    object per line, the last words too)."""
    if logs.logging_json():
        logging.getLogger("afterload").error("%s", line)
        return
    (console or err).print(
        f"[red]error:[/red] {escape(line)}", highlight=False, markup=True, soft_wrap=True
    )


def fail(error: AfterloadError) -> NoReturn:
    for line in error.problems if isinstance(error, ConfigError) else [str(error)]:
        say_error(line)
    raise typer.Exit(error.exit_code)


def load(path: Path) -> LoadedConfig:
    # The config model (pydantic, yaml) loads here, not when the command line is built.
    from afterload.config.load import load_config

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
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Debug logging (same as --log-level debug).")
    ] = False,
    log_level: Annotated[
        logs.Level, typer.Option("--log-level", case_sensitive=False, help="The least level shown.")
    ] = logs.Level.info,
    log_format: Annotated[
        logs.Format,
        typer.Option(
            "--log-format",
            help="text (rich on a terminal, one line per record otherwise) or json (one object "
            "per line: time, level, event, binding, transaction, counts, reason).",
        ),
    ] = logs.Format.text,
) -> None:
    setup_logging(verbose, log_level.value, log_format.value)
