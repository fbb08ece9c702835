"""What a trigger owes survives SIGKILL at every point of a fire, for both ``on_start`` rules.

A real ``afterload run`` process commits data and fires; it is killed before the POST, after dbt
created the run but before the ledger recorded it, or after the ledger recorded it. A second
process then starts with ``on_start: always`` or ``pending``: ``always`` fires at start whatever
happened; ``pending`` fires only when the killed fire was not recorded.
"""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import IO, Any

import pytest

from afterload.triggers.dbt_cloud.emulator import DbtCloudEmulator, EmulatorServer
from afterload.triggers.dbt_cloud.emulator.settings import Fault
from tests.conftest import ACCOUNT, API_KEY, JOB
from tests.materialize_support import rows, run_script, write_config, write_lines

ORDERS = {"source": "data/*.jsonl", "table": "orders", "key": ["/id"]}
RUNS_PATH = rf"/accounts/{ACCOUNT}/runs/$"
POST_PATH = rf"/jobs/{JOB}/run/$"


def posts(emulator: DbtCloudEmulator) -> int:
    return sum(1 for r in emulator.requests if r["method"] == "POST" and "/run/" in r["path"])


def lines_of(stream: IO[str]) -> queue.Queue[str]:
    """The process's log lines, read by a thread so the test can wait with a deadline."""
    found: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        for line in stream:
            found.put(line)
        found.put("")

    threading.Thread(target=pump, daemon=True).start()
    return found


def wait_for(found: queue.Queue[str], text: str, timeout: float = 20.0) -> list[str]:
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = found.get(timeout=0.1)
        except queue.Empty:
            continue
        seen.append(line)
        if text in line:
            return seen
        if line == "":
            break
    raise AssertionError(f"{text!r} not logged; saw: {''.join(seen)[-2000:]}")


def until(predicate: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


def configure(tmp_path: Path, server: EmulatorServer, on_start: str) -> Path:
    block = {
        "access_url": server.url,
        "account_id": ACCOUNT,
        "job_id": JOB,
        "api_key": API_KEY,
        "interval": "0s",
        "on_start": on_start,
    }
    return write_config(tmp_path, [ORDERS], dbt_job_trigger=block).path


def state(db: Path) -> dict[str, Any]:
    (text,) = rows(db, "SELECT checkpoint FROM main._afterload_checkpoints")[0]
    found: dict[str, Any] = json.loads(text)["triggers"][f"dbt_job_trigger/{JOB}"]
    return found


@pytest.mark.parametrize("point", ["before_post", "created_not_recorded", "recorded"])
@pytest.mark.parametrize("on_start", ["always", "pending"])
def test_sigkill_during_a_fire_then_restart(
    tmp_path: Path,
    server: EmulatorServer,
    emulator: DbtCloudEmulator,
    point: str,
    on_start: str,
) -> None:
    write_lines(tmp_path / "data/1.jsonl", [{"id": 1}, {"id": 2}, {"id": 3}])
    # The first process: a fresh file, so nothing is owed at start and the only fire is the one
    # after its first commit; it is killed at ``point`` of that fire.
    config = configure(tmp_path, server, "pending")
    if point == "before_post":
        emulator.inject(Fault(method="GET", path=RUNS_PATH, delay=30))
    elif point == "created_not_recorded":
        emulator.inject(Fault(method="POST", path=POST_PATH, delay=30))
    proc = subprocess.Popen(
        run_script(config, once=False), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    assert proc.stderr is not None
    log = lines_of(proc.stderr)
    try:
        wait_for(log, "committed transaction 1")
        if point == "before_post":
            until(lambda: any("status__in" in str(r.get("query")) for r in emulator.requests))
        elif point == "created_not_recorded":
            until(lambda: posts(emulator) == 1 and len(emulator.runs) == 1)
        else:
            wait_for(log, "started run")
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    db = tmp_path / "warehouse.duckdb"
    before = posts(emulator)
    assert before == (0 if point == "before_post" else 1)
    # The data and what the trigger owes were committed together.
    owed = state(db)["owed"]
    assert owed is not None and owed["transaction"] == 1
    ledger = rows(db, "SELECT decision, run_id, covers_transaction FROM main._afterload_runs")
    if point == "recorded":
        assert ledger == [("started", emulator.runs[0]["id"], owed["transaction"])]
    else:
        assert ledger == []

    # The restart, with the rule under test.
    emulator.reset(emulator.settings)
    config = configure(tmp_path, server, on_start)
    proc = subprocess.Popen(
        run_script(config, once=False), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    assert proc.stderr is not None
    log = lines_of(proc.stderr)
    expect_fire = on_start == "always" or point != "recorded"
    try:
        wait_for(log, "started run" if expect_fire else "no start-up fire")
        time.sleep(0.5)  # nothing else may follow
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert posts(emulator) == (1 if expect_fire else 0)
    after = state(db)
    ledger = rows(db, "SELECT decision, covers_transaction FROM main._afterload_runs")
    if expect_fire:
        assert ("started", owed["transaction"]) in ledger
    # Whatever happened, no committed data is left owed once the second process has fired.
    pending_now = rows(
        db, "SELECT max(covers_transaction) FROM main._afterload_runs WHERE run_id IS NOT NULL"
    )[0][0]
    assert pending_now is not None and pending_now >= after["data"]["transaction"]
