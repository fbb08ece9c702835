"""The dbt trigger inside `afterload flow-connector`, over the real emulator on loopback."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from afterload.triggers.dbt_cloud.emulator import DbtCloudEmulator, EmulatorServer
from tests.conftest import ACCOUNT, API_KEY, JOB
from tests.flow.standin import Standin, checkpoint
from tests.flow.test_connector import _doc, _spec
from tests.materialize_support import Warehouse


def _fires(emulator: DbtCloudEmulator) -> int:
    return sum(
        1 for r in emulator.requests if r["method"] == "POST" and str(r["path"]).endswith("/run/")
    )


def _wait(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.05)


def _with_trigger(spec: dict[str, Any], server: EmulatorServer, interval: str) -> dict[str, Any]:
    spec["config"]["dbt_job_trigger"] = {
        "access_url": server.url,
        "account_id": str(ACCOUNT),
        "job_id": str(JOB),
        "api_key": API_KEY,
        "mode": "ignore",
        "interval": interval,
    }
    return spec


def test_fires_at_start_and_after_data_only(
    tmp_path: Path, server: EmulatorServer, emulator: DbtCloudEmulator, warehouse: Warehouse
) -> None:
    spec = _with_trigger(_spec(warehouse, tmp_path), server, "0s")
    with Standin.spawn() as rt:
        rt.open(spec)
        rt.acknowledge()
        rt.expect_acknowledged()
        _wait(lambda: _fires(emulator) == 1)
        assert _fires(emulator) == 1  # the start-up fire
        rt.transaction(
            loads=[],
            stores=[_doc(1, "a", "one", 1)],
            checkpoint=checkpoint(1),
            acknowledged_pending=False,
        )
        rt.expect_acknowledged()
        _wait(lambda: _fires(emulator) == 2)
        assert _fires(emulator) == 2  # after acknowledged data
        rt.transaction(loads=[], stores=[], checkpoint=checkpoint(2), acknowledged_pending=False)
        rt.expect_acknowledged()
        time.sleep(1.0)
        assert _fires(emulator) == 2  # an empty transaction fires nothing
        assert rt.close() == 0
    assert not any(API_KEY in line for line in rt.stderr_lines)


def test_shards_share_one_interval_on_postgres(
    tmp_path: Path, server: EmulatorServer, emulator: DbtCloudEmulator
) -> None:
    warehouse = Warehouse("postgres", tmp_path)
    spec = _with_trigger(_spec(warehouse, tmp_path), server, "1h")
    try:
        with Standin.spawn() as a, Standin.spawn() as b:
            a.open(spec, key_begin=0, key_end=0x7FFFFFFF)
            a.acknowledge()
            a.expect_acknowledged()
            _wait(lambda: _fires(emulator) == 1)
            b.open(spec, key_begin=0x80000000, key_end=0xFFFFFFFF)
            b.acknowledge()
            b.expect_acknowledged()
            b.transaction(
                loads=[],
                stores=[_doc(9, "b", "bee", 9)],
                checkpoint=checkpoint(1, "b"),
                acknowledged_pending=False,
            )
            b.expect_acknowledged()
            _wait(lambda: any("another shard fired" in line for line in b.stderr_lines))
            assert _fires(emulator) == 1  # one fire per interval from the whole materialization
            assert any("another shard fired" in line for line in b.stderr_lines)
            assert a.close() == 0 and b.close() == 0
    finally:
        warehouse.drop()
