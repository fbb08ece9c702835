"""The dbt Core trigger wired into ``afterload run``: real dbt after real commits.

One module-scoped copy of the test project serves every test (dbt's parse cache then too);
each test has its own warehouse. dbt's start-up is most of the time, so each test starts
dbt as few times as its behaviour needs.
"""

from __future__ import annotations

import itertools
import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from afterload.cli.run import run_materialization
from afterload.cli.status_view import collect_status
from afterload.config import load_config
from afterload.core.stopper import Stopper
from afterload.pipeline import materialize
from afterload.triggers.dbt_core.locks import DuckDBTurns, RunSlot
from tests.materialize_support import POSTGRES_DSN, rows, write_lines

pytest.importorskip("dbt.cli.main", reason="dbt-core is not installed")
pytestmark = pytest.mark.slow


def orders(first: int, count: int) -> list[dict[str, Any]]:
    return [
        {"id": i, "amount": i % 7 + 0.5, "status": "paid" if i % 3 else "placed"}
        for i in range(first, first + count)
    ]


def config(
    tmp_path: Path, project: Path, *, destination: dict[str, Any] | None = None, **dbt: Any
) -> Path:
    block = {"project_dir": str(project), "select": "order_totals", "interval": "1s"} | dbt
    path = tmp_path / "afterload.yaml"
    doc = {
        "name": "shop",
        "destination": destination or {"duckdb": {"path": "warehouse.duckdb"}},
        "syncSchedule": {"syncFrequency": "0s"},
        "bindings": [{"source": "data/*.jsonl", "table": "orders", "key": ["/id"]}],
        "dbt_core_trigger": block,
    }
    path.write_text(yaml.safe_dump(doc))
    return path


def totals(db: Path) -> tuple[list[Any], list[Any]]:
    """The model's rows, and the same computed straight from the raw table."""
    model = rows(db, "select status, orders, amount from order_totals order by 1")
    raw = rows(db, "select status, count(*), sum(amount) from orders group by status order by 1")
    return model, raw


@pytest.fixture
def warehouse(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    db = tmp_path / "warehouse.duckdb"
    monkeypatch.setenv("TEST_DUCKDB_PATH", str(db))  # the test profile's path (dbt inherits it)
    return db


def test_run_once_wait_builds_after_the_commit_with_the_exit_codes(
    tmp_path: Path, project: Path, warehouse: Path
) -> None:
    write_lines(tmp_path / "data/1.jsonl", orders(1, 40))
    cfg = config(tmp_path, project)
    assert run_materialization(load_config(cfg), once=True, wait=True) == 0
    model, raw = totals(warehouse)
    assert model == raw and sum(r[1] for r in model) == 40
    # A failing model: exit 1, and the data it was fired for stays committed.
    write_lines(tmp_path / "data/2.jsonl", orders(41, 5))
    cfg = config(tmp_path, project, select="broken")
    assert run_materialization(load_config(cfg), once=True, wait=True) == 1
    assert rows(warehouse, "select count(*), count(distinct id) from orders") == [(45, 45)]
    # Nothing new committed, but the failed build left its data owed: the next run builds it
    # (before, it said nothing was committed and the model stayed stale).
    assert run_materialization(load_config(cfg), once=True, wait=True) == 1  # still broken
    cfg = config(tmp_path, project)
    assert run_materialization(load_config(cfg), once=True, wait=True) == 0
    model, raw = totals(warehouse)
    assert model == raw and sum(r[1] for r in model) == 45
    # Nothing new and nothing owed: no dbt at all.
    loaded = load_config(cfg)
    assert run_materialization(loaded, once=True, wait=True) == 0
    (state,) = [t for t in collect_status(loaded).triggers if t["trigger"].startswith("dbt ")]
    assert not state["pending"] and state["covering_run"]["status"] == "success"
    assert state["fresh_through"] is not None


def test_follow_runs_after_commits_at_most_once_per_interval_and_retries_a_failure(
    tmp_path: Path,
    project: Path,
    warehouse: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    caplog.set_level(logging.DEBUG, logger="afterload.trigger")
    monkeypatch.setenv("TEST_FLAKY", "fail")  # dbt children inherit the environment
    write_lines(tmp_path / "data/1.jsonl", orders(1, 20))
    cfg = load_config(config(tmp_path, project, select="flaky", interval="4s"))
    stopper = Stopper()
    result: list[Any] = []
    follower = threading.Thread(
        target=lambda: result.append(materialize(cfg, once=False, stopper=stopper))
    )
    follower.start()
    try:
        wait_log(caplog, "the data stays pending, next try at")  # the first run failed
        monkeypatch.delenv("TEST_FLAKY")
        write_lines(tmp_path / "data/2.jsonl", orders(21, 5))
        deadline = time.monotonic() + 120
        while flaky_orders(warehouse) != 25:  # retried until a run after the data succeeds
            assert time.monotonic() < deadline, "the model never caught up"
            time.sleep(1)  # a reader: a dbt run that meets it fails and is retried
        # The model shows the rows before dbt has exited; its end is in the ledger once the
        # success is logged (a stop before that interrupts the run, as it should).
        wait_log(caplog, "succeeded:")
    finally:
        stopper.request("test")
        follower.join(60)
    report = result[0]
    starts = [r for r in caplog.records if r.getMessage().startswith("started dbt")]
    assert len(starts) == len([f for f in report.fires if f.started]) >= 2
    # The interval counts from each fire's decision; dbt itself may start later, after a
    # wait for the DuckDB turn, so the gaps are measured between the decisions.
    fires = [r.created for r in caplog.records if r.getMessage().endswith(": firing")]
    assert len(fires) >= len(starts)
    for a, b in itertools.pairwise(fires):
        assert b - a >= 4 - 0.05  # at most one fire per interval
    assert "model.afterload_test.flaky failed" in caplog.text  # logged in one line
    assert rows(warehouse, "select count(*), count(distinct id) from orders") == [(25, 25)]
    assert not DuckDBTurns(warehouse).busy() and RunSlot(project).holder() is None
    # Each run's end is in the ledger (before, every row stayed "running"), with its mode.
    ended = rows(warehouse, "select mode, status from _afterload_runs where run_id is not null")
    assert ("skip", "error") in ended and ("skip", "success") in ended


def flaky_orders(db: Path) -> int | None:
    try:
        found = rows(db, "select orders from flaky")
    except Exception:  # not built yet, or the file is busy this instant
        return None
    return int(found[0][0])


def test_afterload_sigkilled_while_dbt_runs_loses_nothing_and_catches_up(
    tmp_path: Path, project: Path, warehouse: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_SLOW_SECONDS", "60")
    write_lines(tmp_path / "data/1.jsonl", orders(1, 30))
    cfg = config(tmp_path, project, select="slow order_totals")
    proc = subprocess.Popen(
        [sys.executable, "-m", "afterload", "run", str(cfg)],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        start_new_session=True,
    )
    slot = RunSlot(project)
    deadline = time.monotonic() + 90
    while slot.holder() is None:
        assert time.monotonic() < deadline and proc.poll() is None, "dbt never started"
        time.sleep(0.1)
    dbt = slot.holder()
    assert dbt is not None
    write_lines(tmp_path / "data/2.jsonl", orders(31, 10))  # may or may not be committed
    time.sleep(0.5)
    proc.kill()
    proc.wait()
    deadline = time.monotonic() + 30
    while slot.holder() is not None or DuckDBTurns(warehouse).busy():
        assert time.monotonic() < deadline, "dbt outlived the afterload that started it"
        time.sleep(0.1)
    # The restart commits what was left, and its start-up run covers everything.
    monkeypatch.setenv("TEST_SLOW_SECONDS", "0")
    assert run_materialization(load_config(cfg), once=True, wait=True) == 0
    assert rows(warehouse, "select count(*), count(distinct id), min(id), max(id) from orders") == [
        (40, 40, 1, 40)
    ]
    model, raw = totals(warehouse)
    assert model == raw
    # The killed process's run ended with it: the ledger says so instead of "running".
    ended = rows(
        warehouse,
        "select status from _afterload_runs where run_id is not null order by created_at",
    )
    assert len(ended) >= 2 and ended[-1] == ("success",)
    assert set(ended[:-1]) == {("cancelled",)}


def test_postgres_loads_and_builds_at_once(
    tmp_path: Path, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import psycopg

    schema = f"afterload_dbt_{os.urandom(5).hex()}"
    monkeypatch.setenv("TEST_PG_SCHEMA", schema)
    monkeypatch.setenv("TEST_SOURCE_SCHEMA", schema)
    write_lines(tmp_path / "data/1.jsonl", orders(1, 25))
    destination = {"postgres": {"dsn": POSTGRES_DSN, "schema": schema}}
    cfg = config(tmp_path, project, destination=destination, target="postgres")
    try:
        assert run_materialization(load_config(cfg), once=True, wait=True) == 0
        with psycopg.connect(POSTGRES_DSN, autocommit=True) as con:
            model = con.execute(
                f'select status, orders, amount from "{schema}".order_totals order by 1'
            ).fetchall()
            raw = con.execute(
                f'select status, count(*), sum(amount) from "{schema}".orders group by 1 order by 1'
            ).fetchall()
        assert model == raw and sum(r[1] for r in model) == 25
    finally:
        with psycopg.connect(POSTGRES_DSN, autocommit=True) as con:
            con.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def wait_log(caplog: pytest.LogCaptureFixture, text: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not any(text in r.getMessage() for r in caplog.records):
        assert time.monotonic() < deadline, f"never logged: {text}"
        time.sleep(0.1)


def test_check_and_trigger_on_the_command_line(
    tmp_path: Path, project: Path, warehouse: Path
) -> None:
    from typer.testing import CliRunner

    from afterload.cli import app

    cli = CliRunner()
    missing = config(tmp_path, tmp_path / "no-project")
    result = cli.invoke(app, ["check", str(missing)])
    assert result.exit_code == 1
    assert f"✗ dbt_core_trigger.project_dir: {tmp_path / 'no-project'} does not exist" in (
        " ".join(result.output.split())
    )
    assert "Traceback" not in result.output
    # trigger --wait: dbt's outcome is the exit code (here a failing model: 1).
    write_lines(tmp_path / "data/1.jsonl", orders(1, 3))
    plain = tmp_path / "plain.yaml"  # the same materialization without dbt: load only
    doc = yaml.safe_load(config(tmp_path, project).read_text())
    del doc["dbt_core_trigger"]
    plain.write_text(yaml.safe_dump(doc))
    assert run_materialization(load_config(plain), once=True) == 0
    result = cli.invoke(app, ["trigger", str(config(tmp_path, project, select="broken")), "--wait"])
    assert result.exit_code == 1, result.output
    said = " ".join(result.output.split())
    assert "dbt build: model.afterload_test.broken failed:" in said and "no_such_column" in said
    assert "Traceback" not in said  # one sentence, as for every error a user can cause
    result = cli.invoke(app, ["status", str(plain.with_name("afterload.yaml"))])
    assert result.exit_code == 0, result.output
    assert f"dbt Core project {project}: no dbt running" in " ".join(result.output.split())
