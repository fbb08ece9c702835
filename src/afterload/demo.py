"""``afterload demo``: the product end to end on embedded defaults, with no account anywhere.

It starts the dbt Cloud emulator in-process on a free loopback port, shows what each trigger
mode does, then generates a realistic order stream (a backfill, then inserts, updates and
deletes) into NDJSON files, materializes it into a local DuckDB file, and prints live each
commit, each trigger decision with its reason, and each emulated run's progress. With dbt
Core installed (the ``dbt-duckdb`` extra) it also keeps the real dbt project in
``examples/shop`` fresh on that file, and ends with its ``daily_revenue`` rows next to the same
figures computed straight from the raw table.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import shutil
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
from rich.console import Console
from rich.table import Table

from afterload.config.load import load_config
from afterload.core.stopper import Stopper
from afterload.demo_shop import DBT_INTERVAL, catch_up, dbt_core_available, dbt_core_block, revenue
from afterload.errors import AfterloadError
from afterload.pipeline import materialize
from afterload.triggers.dbt_cloud.action import fire_once
from afterload.triggers.dbt_cloud.client import DbtCloudClient
from afterload.triggers.dbt_cloud.config import DbtJobTrigger
from afterload.triggers.dbt_cloud.emulator import DbtCloudEmulator, EmulatorServer, EmulatorSettings

DEMO_KEY = "demo-key-not-a-secret"
ACCOUNT, MODES_JOB, STREAM_JOB = 1, 1, 2
INTERVAL = 5


def _settings(url: str, **overrides: object) -> DbtJobTrigger:
    values: dict[str, object] = {
        "access_url": url,
        "account_id": ACCOUNT,
        "job_id": MODES_JOB,
        "api_key": DEMO_KEY,
    }
    values.update(overrides)
    return DbtJobTrigger.model_validate(values)


async def _modes(console: Console, url: str) -> None:
    console.rule("1. Modes: what a fire does when a run of the job is already active")
    for mode, why in (
        ("skip", "the default; no run is active, so one starts"),
        ("skip", "a run is queued, so nothing starts (the original counted only running runs)"),
        ("replace", "cancels every active run, then starts one"),
        ("ignore", "starts another regardless; dbt Cloud queues it behind the active one"),
    ):
        settings = _settings(url, mode=mode, cause=f"afterload demo ({mode})")
        async with DbtCloudClient(settings.target()) as client:
            outcome = await fire_once(client, settings)
        console.print(f"  [bold]{mode:<8}[/bold] {outcome.message}  [dim]— {why}[/dim]")


class _OrderStream:
    """Writes orders like a shop would: a backfill first, then a live trickle."""

    def __init__(self, root: Path, seed: int = 7) -> None:
        self.root = root
        self.rng = random.Random(seed)
        self.ids: list[int] = []
        self.next_id = 1
        self.written = 0
        self.deleted = 0
        (root / "orders").mkdir(parents=True, exist_ok=True)

    def _order(self, order_id: int) -> dict[str, Any]:
        rng = self.rng
        at = datetime(2026, 11, 1, tzinfo=UTC) + timedelta(seconds=order_id * 37)
        return {
            "id": order_id,
            "customer": f"customer-{rng.randrange(500):03d}",
            "amount": round(rng.uniform(5, 400), 2),
            "status": rng.choice(["placed", "paid", "shipped"]),
            "created_at": at.isoformat(),
            "shipping": {
                "country": rng.choice(["FR", "NO", "EC", "JP"]),
                "express": rng.random() < 0.2,
            },
            "tags": rng.sample(["gift", "promo", "bulk", "repeat"], k=rng.randrange(3)),
        }

    def write(self, name: str, count: int) -> None:
        lines = []
        for _ in range(count):
            roll = self.rng.random()
            if self.ids and roll < 0.1:
                victim = self.ids.pop(self.rng.randrange(len(self.ids)))
                lines.append({"id": victim, "_meta": {"op": "d"}})
                self.deleted += 1
            elif self.ids and roll < 0.35:
                doc = self._order(self.rng.choice(self.ids))
                doc["status"] = "shipped"
                lines.append(doc)
            else:
                lines.append(self._order(self.next_id))
                self.ids.append(self.next_id)
                self.next_id += 1
        with open(self.root / "orders" / name, "a", encoding="utf-8") as f:
            f.write("".join(json.dumps(d) + "\n" for d in lines))
        self.written += count


#: The example dbt project, beside the package in a checkout (``make demo`` runs from one).
class _Narrator(logging.Handler):
    """Turns the runtime's and the trigger's log records into the demo's live lines."""

    def __init__(self, console: Console, started: float) -> None:
        super().__init__(logging.INFO)
        self.console = console
        self.started = started

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        clock = f"[dim]{time.monotonic() - self.started:5.1f}s[/dim]"
        if record.name == "afterload.trigger.dbt_core":
            if record.levelno >= logging.INFO:
                text = text.removeprefix("dbt: ")
                self.console.print(f"{clock} [blue]dbt core[/blue] {text}", highlight=False)
        elif record.name == "afterload.trigger":
            self.console.print(f"{clock} [magenta]dbt[/magenta]     {text}", highlight=False)
        elif record.name == "afterload.duckdb":
            self.console.print(f"{clock} [cyan]duckdb[/cyan]  {text}", highlight=False)
        elif text.startswith("committed transaction"):
            self.console.print(f"{clock} [cyan]commit[/cyan]  {text}", highlight=False)
        elif record.levelno >= logging.WARNING:
            self.console.print(f"{clock} [yellow]warning[/yellow] {text}", highlight=False)


def _watch_runs(
    emulator: DbtCloudEmulator, console: Console, started: float, stop: threading.Event
) -> None:
    seen: dict[int, str] = {}
    while not stop.wait(0.25):
        for run in emulator.runs:
            if int(run["job_definition_id"]) != STREAM_JOB:
                continue
            state = str(run["status_humanized"])
            if seen.get(run["id"]) != state:
                seen[run["id"]] = state
                clock = f"[dim]{time.monotonic() - started:5.1f}s[/dim]"
                console.print(f"{clock} [green]run[/green]     {run['id']} is {state.lower()}")


def _stream(
    console: Console,
    emulator: DbtCloudEmulator,
    url: str,
    seconds: float,
    workdir: Path,
    dbt_core: bool,
) -> tuple[Path, int]:
    console.rule("2. A live order stream into DuckDB, with the dbt job kept fresh")
    data = workdir / "data"
    config = workdir / "afterload.yaml"
    core_block = dbt_core_block(workdir) if dbt_core else ""
    config.write_text(_materialization_yaml() + _trigger_yaml(url) + core_block)
    console.print(
        f"config {config}: orders by key /id, hard deletes, dbt job {STREAM_JOB} in skip "
        f"mode at most once every {INTERVAL}s"
    )
    if dbt_core:
        console.print(
            f"and real dbt Core: `dbt build` of {workdir / 'shop'} (a copy of examples/shop) "
            f"at most once every {DBT_INTERVAL}s, taking turns with the commits on the DuckDB file"
        )
    stream = _OrderStream(data)
    stream.write("2026-11-01.jsonl", 12_000)  # the backfill: already there at start
    console.print("backfill: 12,000 order events waiting in data/orders/2026-11-01.jsonl")
    loaded = load_config(config)
    stopper = Stopper()
    started = time.monotonic()

    def produce() -> None:
        deadline = started + seconds
        part = 0
        while time.monotonic() < deadline and not stopper.requested:
            if stopper.event.wait(0.7):
                break
            if stream.rng.random() < 0.1:
                part += 1
            stream.write(f"2026-11-{2 + part:02d}.jsonl", stream.rng.randrange(5, 60))
        time.sleep(1.0)
        stopper.request("the demo's stream ended")

    narrator = _Narrator(console, started)
    watched = threading.Event()
    loggers = [
        logging.getLogger(n)
        for n in (
            "afterload.runtime",
            "afterload.materializer",
            "afterload.trigger",
            "afterload.duckdb",
        )
    ]
    for lg in loggers:
        lg.addHandler(narrator)
        lg.propagate = False
    producer = threading.Thread(target=produce, name="demo-stream", daemon=True)
    watcher = threading.Thread(
        target=_watch_runs, args=(emulator, console, started, watched), daemon=True
    )
    producer.start()
    watcher.start()
    try:
        code = 0
        materialize(loaded, once=False, stopper=stopper)
    except AfterloadError as exc:
        console.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
        code = exc.exit_code
    finally:
        stopper.request("done")
        producer.join()
        time.sleep(0.5)
        watched.set()
        watcher.join()
        for lg in loggers:
            lg.removeHandler(narrator)
            lg.propagate = True
    console.print(
        f"stream ended: {stream.written:,} order events written ({stream.deleted:,} deletes)"
    )
    return workdir / "warehouse.duckdb", code


def _materialization_yaml() -> str:
    return """\
name: demo-shop
destination:
  duckdb: {path: warehouse.duckdb}
syncSchedule: {syncFrequency: 0s}
transaction: {max_documents: 5000}
bindings:
  - source: data/orders/*.jsonl
    table: orders
    key: [/id]
    hard_delete: true
"""


def _trigger_yaml(url: str) -> str:
    return f"""\
dbt_job_trigger:
  access_url: {url}
  account_id: {ACCOUNT}
  job_id: {STREAM_JOB}
  api_key: {DEMO_KEY}
  cause: afterload demo
  mode: skip
  interval: {INTERVAL}s
"""


def user_path(path: Path, cwd: Path | None = None) -> str:
    """``path`` as the user would type it: relative to where they are when it is below it."""
    cwd = cwd or Path.cwd()
    try:
        return path.resolve().relative_to(cwd.resolve()).as_posix()
    except ValueError:
        return str(path.resolve())


def leave_config(config: Path) -> None:
    """The demo's config without its trigger: the emulator it named stopped with the demo, so
    ``afterload status`` on it would only report an unreachable dbt Cloud."""
    config.write_text(
        _materialization_yaml()
        + "# dbt_job_trigger: removed after the demo; its dbt Cloud emulator has stopped.\n"
    )


def _summary(console: Console, emulator: DbtCloudEmulator, warehouse: Path) -> None:
    console.rule("4. Result")
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        count = con.execute("SELECT count(*) FROM orders").fetchone()
        rows = con.execute(
            "SELECT id, customer, amount, status, created_at::VARCHAR, "
            "strftime(flow_published_at, '%H:%M:%S.%f') "
            "FROM orders ORDER BY id DESC LIMIT 5"
        ).fetchall()
        txns = con.execute("SELECT transactions FROM _afterload_checkpoints").fetchone()
        ledger = con.execute(
            "SELECT strftime(created_at, '%H:%M:%S'), coalesce(run_id::VARCHAR, '-'), decision, "
            "coalesce(covers_transaction::VARCHAR, '-'), coalesce(status, '…') "
            "FROM _afterload_runs ORDER BY created_at"
        ).fetchall()
    finally:
        con.close()
    runs = [r for r in emulator.runs if int(r["job_definition_id"]) == STREAM_JOB]
    console.print(
        f"{warehouse}: table orders has {count[0] if count else 0:,} rows after "
        f"{txns[0] if txns else 0} transactions; dbt job {STREAM_JOB} ran {len(runs)} times"
    )
    table = Table(title="orders (newest 5)", title_justify="left")
    for col in ("id", "customer", "amount", "status", "created_at", "flow_published_at"):
        table.add_column(col)
    for row in rows:
        table.add_row(*(str(v) for v in row))
    console.print(table)
    console.print(
        f"{txns[0] if txns else 0} commits, {len(runs)} dbt runs: one fire at start, then at "
        f"most one every {INTERVAL}s and only after commits that stored documents; a fire that "
        "finds a run active is skipped and its data stays pending until a later run covers it."
    )
    runs_table = Table(
        title=f"the run ledger, _afterload_runs ({len(ledger)} decisions)", title_justify="left"
    )
    for col in ("created", "run", "decision", "covers txn", "status"):
        runs_table.add_column(col)
    for row in ledger:
        runs_table.add_row(*(str(v) for v in row))
    console.print(runs_table)
    config = warehouse.parent / "afterload.yaml"
    leave_config(config)
    console.print(f"try it yourself: afterload status {user_path(config)}", highlight=False)
    console.print(f"and the ledger:  afterload runs {user_path(config)}", highlight=False)


def run_demo(console: Console, *, seconds: float, workdir: Path) -> int:
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    emulator = DbtCloudEmulator(
        EmulatorSettings(
            accounts={ACCOUNT: [MODES_JOB, STREAM_JOB]},
            api_key=DEMO_KEY,
            queue_seconds=1.0,
            run_seconds=3.0,
        )
    )
    why_not = dbt_core_available()
    with EmulatorServer(emulator) as server:
        console.print(f"dbt Cloud emulator at {server.url} (account {ACCOUNT}); no account needed")
        if why_not:
            console.print(f"[yellow]no dbt Core part:[/yellow] {why_not}", highlight=False)
        asyncio.run(_modes(console, server.url))
        warehouse, code = _stream(
            console, emulator, server.url, seconds, workdir, dbt_core=why_not is None
        )
        time.sleep(0.2)
    if code != 0:
        return code
    if why_not is None and not catch_up(console, workdir / "afterload.yaml"):
        return 1
    _summary(console, emulator, warehouse)
    if why_not is None:
        revenue(console, warehouse)
    return code
