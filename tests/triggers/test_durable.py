"""The trigger remembers and reports: ledger rows for every decision, runs followed to their
end, ``status`` and ``runs`` reading them — against DuckDB and PostgreSQL, with the real
emulator on loopback."""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from afterload.cli import app
from afterload.core.stopper import Stopper
from afterload.metrics import RunMetrics
from afterload.pipeline import materialize
from afterload.triggers.dbt_cloud.emulator import DbtCloudEmulator, EmulatorServer
from afterload.triggers.dbt_cloud.emulator.settings import Fault
from tests.conftest import ACCOUNT, API_KEY, JOB
from tests.materialize_support import Warehouse, write_config, write_lines

ORDERS = {"source": "data/*.jsonl", "table": "orders", "key": ["/id"]}
runner = CliRunner()


def block(server: EmulatorServer, **overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "access_url": server.url,
        "account_id": ACCOUNT,
        "job_id": JOB,
        "api_key": API_KEY,
        "interval": "0s",
    }
    values.update(overrides)
    return values


def until(predicate: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)


def follow(loaded: Any, until_true: Any) -> RunMetrics:
    """``run`` (following) in a thread until ``until_true()``, then a clean stop."""
    stopper = Stopper()
    done: list[Any] = []
    metrics = RunMetrics(now=lambda: datetime.now(UTC))
    thread = threading.Thread(
        target=lambda: done.append(
            materialize(loaded, once=False, stopper=stopper, follow_every=0.2, metrics=metrics)
        )
    )
    thread.start()
    try:
        until(until_true, timeout=30)
        time.sleep(0.6)  # a few looks of the follower
    finally:
        stopper.request("test")
        thread.join(30)
    assert done, "the run did not end"
    return metrics


def status_of(loaded: Any) -> dict[str, Any]:
    result = runner.invoke(app, ["status", str(loaded.path), "--json"])
    assert result.exit_code == 0, result.output
    (item,) = json.loads(result.output)["triggers"]
    assert item["trigger"] == f"dbt_job_trigger/{JOB}"
    found: dict[str, Any] = item
    return found


def test_ledger_follows_runs_and_status_reports_freshness(
    tmp_path: Path, server: EmulatorServer, emulator: DbtCloudEmulator, warehouse: Warehouse
) -> None:
    loaded = write_config(
        tmp_path,
        [ORDERS],
        warehouse=warehouse,
        dbt_job_trigger=block(server, mode="skip", on_start="pending"),
    )
    write_lines(tmp_path / "data/1.jsonl", [{"id": 1}, {"id": 2}])
    # Runs long enough for the second file's commit to meet run A still going.
    emulator.reset(dataclasses.replace(emulator.settings, run_seconds=3.0))

    def second_file_skipped() -> bool:
        runs = emulator.runs
        if len(runs) == 1 and not (tmp_path / "data/2.jsonl").exists():
            # New data while run A is queued or running: that fire is skipped for A.
            write_lines(tmp_path / "data/2.jsonl", [{"id": 3}])
        skips = [r for r in emulator.requests if "status__in" in str(r.get("query"))]
        return len(skips) >= 2 and all(r["status"] == 10 for r in runs)

    # A fresh file owes nothing at start: the first fire follows the first commit.
    follow(loaded, second_file_skipped)
    (first,) = [r["id"] for r in emulator.runs]
    ledger = warehouse.rows(
        "SELECT decision, run_id, covers_transaction, status, finished_at IS NOT NULL "
        "FROM _afterload_runs ORDER BY created_at"
    )
    assert ledger == [
        ("started", first, 1, "success", True),
        (f"skipped for run {first}", None, 2, None, False),
    ]
    item = status_of(loaded)
    assert item["newest_data"]["transaction"] == 2
    assert item["pending"] is True and item["covering_run"] is None
    assert 0 <= item["freshness_lag_seconds"] < 120  # through transaction 1

    # The next start owes transaction 2 (on_start: pending), fires for it, and ...
    materialize(loaded, once=True)
    second = emulator.runs[-1]["id"]
    assert len(emulator.runs) == 2
    assert status_of(loaded)["covering_run"]["status"] is None  # not followed by --once
    # ... the start after that owes nothing, so it does not fire, but follows run B to its end.
    metrics = follow(loaded, lambda: emulator.runs[-1]["status"] == 10)
    assert len(emulator.runs) == 2
    lag = metrics.registry.get_sample_value(
        "afterload_freshness_lag_seconds", {"trigger": f"dbt_job_trigger/{JOB}"}
    )
    assert lag is not None and 0 <= lag < 120
    item = status_of(loaded)
    assert item["pending"] is False
    assert item["covering_run"]["run_id"] == second
    assert item["covering_run"]["status"] == "success"
    assert item["covering_run"]["covers_transaction"] == 2
    # The human forms say the same.
    result = runner.invoke(app, ["status", str(loaded.path)], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    assert f"covered by run {second} (success)" in result.output
    result = runner.invoke(app, ["runs", str(loaded.path), "--json", "--last", "2"])
    assert result.exit_code == 0, result.output
    newest = json.loads(result.output)
    assert [r["run_id"] for r in newest] == [second, None]
    result = runner.invoke(app, ["runs", str(loaded.path)], env={"COLUMNS": "250"})
    assert result.exit_code == 0 and f"skipped for run {first}" in result.output


def test_on_start_pending_fires_only_for_uncovered_data(
    tmp_path: Path, server: EmulatorServer, emulator: DbtCloudEmulator, warehouse: Warehouse
) -> None:
    write_lines(tmp_path / "data/1.jsonl", [{"id": 1}])
    loaded = write_config(
        tmp_path,
        [ORDERS],
        warehouse=warehouse,
        dbt_job_trigger=block(server, on_start="pending", mode="ignore"),
    )
    materialize(loaded, once=True)
    assert len(emulator.runs) == 1  # the end-of-run fire covers transaction 1
    materialize(loaded, once=True)
    assert len(emulator.runs) == 1  # nothing new, nothing owed: no fire

    # A fire that fails for good leaves the data owed, committed with it ...
    emulator.inject(Fault(method="POST", path=r"/run/$", status=400))
    write_lines(tmp_path / "data/2.jsonl", [{"id": 2}])
    materialize(loaded, once=True)
    (text,) = warehouse.rows("SELECT checkpoint FROM _afterload_checkpoints")[0]
    state = json.loads(text)["triggers"][f"dbt_job_trigger/{JOB}"]
    assert state["owed"]["transaction"] == 2
    ledger = warehouse.rows("SELECT decision FROM _afterload_runs ORDER BY created_at")
    assert ledger[-1][0].startswith("failed: ")
    # ... so the next start with nothing new to read still owes it, and fires.
    report = materialize(loaded, once=True, wait=True)
    assert len(emulator.runs) == 2 and report.runs == (emulator.runs[-1]["id"],)
    assert report.waited is not None and report.waited.result == "success"
    # ``--wait`` saw the end, so the ledger has it too.
    covered = warehouse.rows(
        "SELECT covers_transaction, status FROM _afterload_runs WHERE run_id = "
        f"{emulator.runs[-1]['id']}"
    )
    assert covered == [(2, "success")]
