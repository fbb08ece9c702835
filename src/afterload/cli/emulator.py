"""``afterload dbt-cloud-emulator``: a local dbt Cloud API v2 (needs the ``emulator`` extra)."""

from __future__ import annotations

from typing import Annotated

import typer

from afterload.cli.app import app, fail
from afterload.errors import ConfigError


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
    try:
        from afterload.triggers.dbt_cloud.emulator import EmulatorSettings, serve
    except ImportError:
        fail(ConfigError(["the emulator needs its extra: pip install 'afterload[emulator]'"]))

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
