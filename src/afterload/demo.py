"""``afterload demo``: the product end to end on embedded defaults, with no account anywhere.

It starts the dbt Cloud emulator in-process on a free loopback port and shows the trigger's
modes and schedule against it, saying what happened and why.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from rich.console import Console
from rich.table import Table

from afterload.config import DbtJobTrigger
from afterload.dbt.cloud import DbtCloudClient
from afterload.dbt.emulator import DbtCloudEmulator, EmulatorServer, EmulatorSettings
from afterload.trigger import JobTrigger, fire_once

DEMO_KEY = "demo-key-not-a-secret"
ACCOUNT, JOB = 1, 1


def _settings(url: str, **overrides: object) -> DbtJobTrigger:
    values: dict[str, object] = {
        "access_url": url,
        "account_id": ACCOUNT,
        "job_id": JOB,
        "api_key": DEMO_KEY,
        "cause": "afterload demo",
    }
    values.update(overrides)
    return DbtJobTrigger.model_validate(values)


def _runs_table(emulator: DbtCloudEmulator) -> Table:
    table = Table(title="dbt Cloud runs (emulator)", title_justify="left")
    for col in ("run", "status", "cause"):
        table.add_column(col)
    for run in emulator.runs:
        trigger = run.get("trigger") or {}
        table.add_row(str(run["id"]), str(run["status_humanized"]), str(trigger.get("cause", "")))
    return table


async def _modes(console: Console, url: str) -> None:
    console.rule("1. Modes: what a fire does when a run is already queued or running")
    for mode, why in (
        ("skip", "the default: no run is active, so one starts"),
        ("skip", "a run is active, so nothing starts (queued runs count: the original saw only running)"),
        ("replace", "cancels every active run, then starts one"),
        ("ignore", "starts another regardless; dbt Cloud queues it behind the active one"),
    ):
        settings = _settings(url, mode=mode, cause=f"afterload demo ({mode})")
        async with DbtCloudClient(settings) as client:
            outcome = await fire_once(client, settings)
        console.print(f"[bold]{mode:<8}[/bold] {outcome.message}  [dim]— {why}[/dim]")


async def _schedule(console: Console, url: str) -> None:
    console.rule("2. Schedule: fire at start, then at most once per interval after new data")
    settings = _settings(url, mode="skip", interval="3s", cause="afterload demo (schedule)")
    trigger = JobTrigger(settings)
    await trigger.start()
    console.print("start: the seed's initial fire covers data an earlier process committed")
    await asyncio.sleep(0.5)
    for n, docs in enumerate((0, 120, 40, 300), start=1):
        trigger.notify_commit(docs)
        note = "stored nothing: no fire" if docs == 0 else "new data: a fire is due"
        console.print(f"commit {n}: {docs} documents — {note}")
        await asyncio.sleep(0.4)
    console.print("three data commits inside one 3s interval → one trailing fire, not three")
    await asyncio.sleep(4.0)
    await trigger.stop()
    for outcome in trigger.outcomes:
        console.print(f"  fire: {outcome.message}")


def run_demo(console: Console, *, seconds: float, workdir: Path) -> int:
    logging.getLogger("afterload.trigger").setLevel(logging.WARNING)
    emulator = DbtCloudEmulator(
        EmulatorSettings(
            accounts={ACCOUNT: [JOB]}, api_key=DEMO_KEY, queue_seconds=1.5, run_seconds=3.0
        )
    )
    with EmulatorServer(emulator) as server:
        console.print(f"dbt Cloud emulator listening at {server.url} (account 1, job 1)")
        asyncio.run(_modes(console, server.url))
        asyncio.run(_schedule(console, server.url))
        console.print(_runs_table(emulator))
    return 0
