"""The ``afterload`` command line: wires config, client, trigger and runtime together."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.logging import RichHandler

from afterload import __version__
from afterload.config import DbtJobTrigger, LoadedConfig, json_schema, load_config
from afterload.durations import parse_duration
from afterload.errors import AfterloadError, ConfigError

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


def _load(path: Path) -> LoadedConfig:
    try:
        return load_config(path)
    except ConfigError as exc:
        fail(exc)


def _trigger_block(loaded: LoadedConfig) -> DbtJobTrigger:
    block = loaded.config.dbt_job_trigger
    if block is None:
        fail(ConfigError([f"{loaded.path}: dbt_job_trigger: the config has no such block"]))
    return block


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


@app.command()
def run(
    config: ConfigArg,
    once: Annotated[
        bool, typer.Option("--once", help="Read what is there, commit, fire once, exit.")
    ] = False,
    wait: Annotated[bool, typer.Option(help="With --once: wait for the dbt run to end.")] = False,
    timeout: Annotated[str, typer.Option(help="How long --wait waits, e.g. 30m, 1h.")] = "1h",
) -> None:
    """Materialize the config's bindings into its destination until SIGINT or SIGTERM.

    Fires the dbt job at start and after commits that stored documents. With --once, exit 0
    when done, 1 on an error; with --wait the exit codes are those of `trigger --wait`.
    """
    from afterload.runtime import run_materialization

    try:
        wait_for = parse_duration(timeout).total_seconds()
    except ValueError as exc:
        fail(ConfigError([f"--timeout: {exc}"]))
    loaded = _load(config)
    raise typer.Exit(
        run_materialization(loaded, once=once, wait=wait, timeout=wait_for, console=err)
    )


@app.command()
def status(config: ConfigArg) -> None:
    """Per binding: offset reached against the source size, last commit, rows, active dbt runs."""
    from afterload.status import materialization_status

    raise typer.Exit(materialization_status(_load(config), out))


@app.command()
def trigger(
    config: ConfigArg,
    wait: Annotated[bool, typer.Option(help="Wait for the run to end.")] = False,
    timeout: Annotated[str, typer.Option(help="How long --wait waits, e.g. 30m, 1h.")] = "1h",
) -> None:
    """Fire the dbt Cloud job once now, honouring mode and cause.

    With --wait, exit 0 when the run succeeds, 1 on error, 2 when cancelled, 3 on timeout.
    """
    from afterload.dbt.cloud import DbtCloudClient, RunStatus
    from afterload.trigger import fire_once

    try:
        wait_for = parse_duration(timeout).total_seconds()
    except ValueError as exc:
        fail(ConfigError([f"--timeout: {exc}"]))
    settings = _trigger_block(_load(config))

    async def go() -> int:
        async with DbtCloudClient(settings) as client:
            outcome = await fire_once(client, settings)
            if outcome.kind == "failed":
                err.print(f"[red]✗[/red] dbt job {settings.job_id}: {outcome.message}")
                return EXIT_ERROR
            if outcome.run is None:
                out.print(f"dbt job {settings.job_id}: {outcome.message}")
                return EXIT_SUCCESS
            out.print(f"dbt job {settings.job_id}: {outcome.message}")
            out.print(f"run {outcome.run.id}: {client.run_url(outcome.run)}", soft_wrap=True)
            if not wait:
                return EXIT_SUCCESS
            final = await client.wait_for_run(outcome.run.id, wait_for)
            out.print(f"run {final.id}: {final.status_humanized}")
            if final.is_active:
                return EXIT_TIMEOUT
            return {
                RunStatus.SUCCESS: EXIT_SUCCESS,
                RunStatus.CANCELLED: EXIT_CANCELLED,
            }.get(RunStatus(final.status), EXIT_ERROR)

    try:
        code = asyncio.run(go())
    except AfterloadError as exc:
        fail(exc)
    raise typer.Exit(code)


@app.command()
def check(config: ConfigArg) -> None:
    """Validate the config, reach the destination, and check access to the dbt Cloud job."""
    from afterload.trigger import check_access

    try:
        loaded = load_config(config)
    except ConfigError as exc:
        out.print(f"[red]✗[/red] config {config}")
        fail(exc)
    out.print(f"[green]✓[/green] config {config} is valid")
    failed = False
    if loaded.config.destination is not None:
        from afterload.status import probe_destination

        try:
            found = probe_destination(loaded)
        except AfterloadError as exc:
            out.print(f"[red]✗[/red] destination: {exc}", soft_wrap=True, highlight=False)
            failed = True
        else:
            out.print(f"[green]✓[/green] destination: {found}", soft_wrap=True, highlight=False)
    settings = loaded.config.dbt_job_trigger
    if settings is None:
        out.print("[green]✓[/green] no dbt_job_trigger block: no job will be triggered")
        raise typer.Exit(1 if failed else 0)
    try:
        job = asyncio.run(check_access(settings))
    except AfterloadError as exc:
        out.print(f"[red]✗[/red] dbt Cloud job {settings.job_id}: {exc}", soft_wrap=True)
        raise typer.Exit(1) from None
    out.print(
        f"[green]✓[/green] dbt Cloud job {job.id} ({job.name or 'unnamed'}) in account "
        f"{settings.account_id} at {settings.base_url} is reachable with this key",
        soft_wrap=True,
    )
    raise typer.Exit(1 if failed else 0)


@app.command()
def spec() -> None:
    """Print the JSON Schema of the config (defaults, enums, descriptions, secrets)."""
    sys.stdout.write(json.dumps(json_schema(), indent=2, ensure_ascii=False) + "\n")


@app.command("dbt-cloud-emulator")
def dbt_cloud_emulator(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8580,
    account: Annotated[
        list[int] | None, typer.Option(help="Account id (repeat; pairs with --job).")
    ] = None,
    job: Annotated[list[int] | None, typer.Option(help="Job id (repeat).")] = None,
    api_key: Annotated[str, typer.Option(help="The key clients must send.")] = "emulator-key",
    queue_seconds: Annotated[float, typer.Option(help="Seconds a run stays queued.")] = 1.0,
    run_seconds: Annotated[float, typer.Option(help="Seconds a run runs.")] = 5.0,
    fail_rate: Annotated[float, typer.Option(help="Share of runs that end in error.")] = 0.0,
    rate_limit: Annotated[
        str | None, typer.Option(help="Requests per minute per account, e.g. 60/min.")
    ] = None,
    latency: Annotated[float, typer.Option(help="Seconds added to every answer.")] = 0.0,
) -> None:
    """Serve a local dbt Cloud API v2 emulator, for tests and demos without an account."""
    from afterload.dbt.emulator import EmulatorSettings, serve

    accounts = list(account or [1])
    jobs = list(job or [1])
    mapping: dict[int, list[int]] = {}
    if len(accounts) == 1:
        mapping[accounts[0]] = jobs
    elif len(accounts) == len(jobs):
        for a, j in zip(accounts, jobs, strict=True):
            mapping.setdefault(a, []).append(j)
    else:
        fail(ConfigError(["--account/--job: give one account, or as many accounts as jobs"]))
    limit = None
    if rate_limit:
        try:
            limit = int(rate_limit.removesuffix("/min"))
        except ValueError:
            fail(ConfigError([f"--rate-limit: {rate_limit!r} is not N/min"]))
    serve(
        EmulatorSettings(
            accounts=mapping,
            api_key=api_key,
            queue_seconds=queue_seconds,
            run_seconds=run_seconds,
            fail_rate=fail_rate,
            rate_limit=limit,
            latency=latency,
        ),
        host=host,
        port=port,
    )


@app.command()
def demo(
    seconds: Annotated[float, typer.Option(help="How long the generated stream runs.")] = 30.0,
    workdir: Annotated[Path, typer.Option(help="Where the demo writes its files.")] = Path(
        "demo-output"
    ),
) -> None:
    """Show afterload end to end on embedded defaults: no account needed anywhere."""
    from afterload.demo import run_demo

    try:
        code = run_demo(out, seconds=seconds, workdir=workdir)
    except AfterloadError as exc:
        fail(exc)
    raise typer.Exit(code)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
