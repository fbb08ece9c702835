"""Shared fixtures: a real dbt Cloud emulator on loopback, and trigger settings pointing at it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from afterload.triggers.dbt_cloud.config import DbtJobTrigger
from afterload.triggers.dbt_cloud.emulator import DbtCloudEmulator, EmulatorServer, EmulatorSettings
from afterload.triggers.dbt_cloud.policy import RetryPolicy
from tests.materialize_support import Warehouse

API_KEY = "dbtc_test-key-9f8e7d6c5b4a"
ACCOUNT, JOB = 7, 42

#: Retries as in production, but with waits short enough for tests.
FAST_RETRY = RetryPolicy(
    attempts=5, timeout=20.0, wait_initial=0.01, wait_max=0.05, wait_jitter=0.01
)


@pytest.fixture(params=["duckdb", "postgres"])
def warehouse(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Warehouse]:
    """Each destination in turn: the runtime's suite is one suite, run against both."""
    wh = Warehouse(request.param, tmp_path)
    yield wh
    wh.drop()


@pytest.fixture
def emulator() -> DbtCloudEmulator:
    return DbtCloudEmulator(
        EmulatorSettings(
            accounts={ACCOUNT: [JOB, JOB + 1]},
            api_key=API_KEY,
            queue_seconds=0.5,
            run_seconds=1.0,
        )
    )


@pytest.fixture
def server(emulator: DbtCloudEmulator) -> Iterator[EmulatorServer]:
    with EmulatorServer(emulator) as srv:
        yield srv


@pytest.fixture
def make_settings(server: EmulatorServer) -> Callable[..., DbtJobTrigger]:
    def make(**overrides: Any) -> DbtJobTrigger:
        values: dict[str, Any] = {
            "access_url": server.url,
            "account_id": ACCOUNT,
            "job_id": JOB,
            "api_key": API_KEY,
            "interval": "0s",
        }
        values.update(overrides)
        return DbtJobTrigger.model_validate(values)

    return make


async def until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait (really) until a condition holds: for background tasks doing real HTTP."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)
