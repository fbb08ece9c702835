"""A tiny dbt project on a DuckDB file that afterload itself loaded."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from afterload.cli.run import run_materialization
from afterload.config import load_config
from afterload.triggers.dbt_core import DbtCoreRunner, DbtCoreTrigger, DuckDBTurns
from tests.materialize_support import write_lines

PROJECT = Path(__file__).parent / "project"
ORDERS = [
    {"id": 1, "amount": 12.5, "status": "paid"},
    {"id": 2, "amount": 7, "status": "placed"},
    {"id": 3, "amount": 30, "status": "paid"},
    {"id": 2, "_meta": {"op": "d"}},
]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One copy per module: dbt's partial-parse cache in target/ then serves every test."""
    dest = tmp_path_factory.mktemp("dbt") / "project"
    shutil.copytree(PROJECT, dest)
    return dest


@pytest.fixture
def duckdb_file(tmp_path: Path) -> Path:
    """A DuckDB file holding `orders`, committed by afterload (`run --once`)."""
    write_lines(tmp_path / "orders.jsonl", ORDERS)
    config = tmp_path / "afterload.yaml"
    config.write_text(
        "name: shop\n"
        "destination: {duckdb: {path: warehouse.duckdb}}\n"
        "bindings: [{source: orders.jsonl, table: orders, key: [/id], hard_delete: true}]\n"
    )
    assert run_materialization(load_config(config), once=True) == 0
    return tmp_path / "warehouse.duckdb"


def gone(pgid: int) -> bool:
    """No live process is left in the group (zombies whose parent is gone do not count: a
    container's init may never reap them). The tests' own reading of /proc, not the code's."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return False
    return True


class Runners:
    """Builds runners on the module's project against this test's warehouse."""

    def __init__(self, project: Path, warehouse: Path) -> None:
        self.project = project
        self.warehouse = warehouse
        self.turns = DuckDBTurns(warehouse)
        self.made: list[DbtCoreRunner] = []

    def __call__(
        self,
        slow: float = 0,
        turns: bool = True,
        env: dict[str, str] | None = None,
        **block: Any,
    ) -> DbtCoreRunner:
        block.setdefault("project_dir", str(self.project))
        block.setdefault("select", "order_totals")
        settings = DbtCoreTrigger.model_validate(block)
        env = {
            "TEST_DUCKDB_PATH": str(self.warehouse),
            "TEST_SLOW_SECONDS": str(slow),
            **(env or {}),
        }
        runner = DbtCoreRunner(settings, turns=self.turns if turns else None, env=env, grace=2.0)
        self.made.append(runner)
        return runner


@pytest.fixture
async def runners(project: Path, duckdb_file: Path) -> Any:
    made = Runners(project, duckdb_file)
    yield made
    for runner in made.made:
        await runner.stop(grace=1.0)


@pytest.fixture(autouse=True)
def _dbt_log(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    caplog.set_level(logging.DEBUG, logger="afterload.trigger.dbt_core")
    yield
