"""The runtime drives the dbt trigger: against the real emulator over loopback HTTP."""

from __future__ import annotations

import io
import threading
from pathlib import Path
from typing import Any

from rich.console import Console

from afterload.cli.run import run_materialization
from afterload.core.stopper import Stopper
from afterload.triggers.dbt_cloud.emulator import DbtCloudEmulator, EmulatorServer
from tests.conftest import ACCOUNT, API_KEY, JOB
from tests.materialize_support import Warehouse, write_config, write_lines

ORDERS = {"source": "data/*.jsonl", "table": "orders", "key": ["/id"]}


def trigger_block(server: EmulatorServer, **overrides: Any) -> dict[str, Any]:
    block = {
        "access_url": server.url,
        "account_id": ACCOUNT,
        "job_id": JOB,
        "api_key": API_KEY,
        "interval": "0s",
    }
    block.update(overrides)
    return block


def fired(emulator: DbtCloudEmulator) -> list[dict[str, Any]]:
    return [
        r for r in emulator.requests if r["method"] == "POST" and str(r["path"]).endswith("/run/")
    ]


def quiet() -> Console:
    return Console(file=io.StringIO(), record=True, width=200)


def test_once_fires_once_after_data_and_not_without(
    tmp_path: Path, server: EmulatorServer, emulator: DbtCloudEmulator, warehouse: Warehouse
) -> None:
    loaded = write_config(
        tmp_path, [ORDERS], warehouse=warehouse, dbt_job_trigger=trigger_block(server)
    )
    write_lines(tmp_path / "data/1.jsonl", [{"id": 1}, {"id": 2}])
    assert run_materialization(loaded, once=True, console=quiet()) == 0
    assert len(fired(emulator)) == 1  # no start-up fire: the final one covers it
    assert run_materialization(loaded, once=True, console=quiet()) == 0
    assert len(fired(emulator)) == 1  # nothing committed, nothing fired


def test_a_rejected_key_stops_before_any_data_moves(
    tmp_path: Path, server: EmulatorServer, emulator: DbtCloudEmulator, warehouse: Warehouse
) -> None:
    loaded = write_config(
        tmp_path,
        [ORDERS],
        warehouse=warehouse,
        dbt_job_trigger=trigger_block(server, api_key="dbtc_wrong"),
    )
    write_lines(tmp_path / "data/1.jsonl", [{"id": 1}])
    console = quiet()
    assert run_materialization(loaded, once=True, console=console) == 1
    assert "error:" in console.export_text()
    assert not warehouse.exists()  # checked before the destination is opened


def test_follow_fires_at_start_and_coalesces_a_backfill(
    tmp_path: Path, server: EmulatorServer, emulator: DbtCloudEmulator, warehouse: Warehouse
) -> None:
    loaded = write_config(
        tmp_path,
        [ORDERS],
        warehouse=warehouse,
        dbt_job_trigger=trigger_block(server, interval="1s", mode="ignore"),
        transaction={"max_documents": 10},
    )
    write_lines(tmp_path / "data/1.jsonl", [{"id": i} for i in range(200)])
    stopper = Stopper()
    timer = threading.Timer(2.6, stopper.request, args=("test",))
    timer.start()
    try:
        assert run_materialization(loaded, once=False, console=quiet(), stopper=stopper) == 0
    finally:
        timer.cancel()
    assert warehouse.rows("SELECT count(*) FROM orders") == [(200,)]
    # 20 commits, but one fire at start and one trailing fire an interval later.
    assert len(fired(emulator)) == 2
