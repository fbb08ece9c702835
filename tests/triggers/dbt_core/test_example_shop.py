"""examples/shop, the demo's project, stays right while afterload loads inserts, updates and
hard deletes between two builds: the incremental model equals an aggregate of the raw table."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from afterload.cli.run import run_materialization
from afterload.config import load_config
from afterload.triggers.dbt_core import DbtCoreRunner, DbtCoreTrigger, DbtResult, DuckDBTurns
from tests.materialize_support import ROOT, rows, write_lines

pytest.importorskip(
    "dbt.cli.main",
    reason="dbt-core is not installed "
    "(pip install -c constraints/dbt.txt -e '.[dbt-duckdb,dbt-postgres]')",
)
pytestmark = pytest.mark.slow

RAW = (
    "select cast(cast(created_at as timestamptz) as date), count(*), round(sum(amount), 2)"
    " from orders group by 1 order by 1"
)
MODEL = "select order_date, orders, revenue from daily_revenue where orders > 0 order by 1"


def order(i: int, day: int, amount: float) -> dict[str, object]:
    return {
        "id": i,
        "amount": amount,
        "status": "paid",
        "customer": f"c{i % 3}",
        "created_at": f"2026-11-{day:02d}T10:00:00+00:00",
    }


async def test_daily_revenue_follows_inserts_updates_and_deletes(tmp_path: Path) -> None:
    project = tmp_path / "shop"
    shutil.copytree(ROOT / "examples" / "shop", project)
    config = tmp_path / "afterload.yaml"
    config.write_text(
        "name: shop\ndestination: {duckdb: {path: warehouse.duckdb}}\n"
        "bindings: [{source: 'orders/*.jsonl', table: orders, key: [/id], hard_delete: true}]\n"
    )
    db = tmp_path / "warehouse.duckdb"
    write_lines(tmp_path / "orders/1.jsonl", [order(i, 1 + i % 3, 10.0 + i) for i in range(1, 10)])
    assert run_materialization(load_config(config), once=True) == 0
    runner = DbtCoreRunner(
        DbtCoreTrigger.model_validate({"project_dir": str(project)}),
        turns=DuckDBTurns(db),
        env={"AFTERLOAD_DUCKDB_PATH": str(db)},
    )
    first = await runner.run()
    assert isinstance(first, DbtResult) and first.outcome == "success", first
    assert rows(db, MODEL) == rows(db, RAW)
    write_lines(
        tmp_path / "orders/2.jsonl",
        [
            order(2, 3, 99.5),  # moves to another day with another amount
            {"id": 3, "_meta": {"op": "d"}},  # 3, 6 and 9 are all of day 1: it empties
            {"id": 6, "_meta": {"op": "d"}},
            {"id": 9, "_meta": {"op": "d"}},
            order(20, 5, 1.25),  # a new day
        ],
    )
    assert run_materialization(load_config(config), once=True) == 0
    second = await runner.run()
    assert isinstance(second, DbtResult) and second.outcome == "success", second
    assert rows(db, MODEL) == rows(db, RAW)
    assert rows(db, "select count(*) from daily_revenue where orders = 0") == [(1,)]
