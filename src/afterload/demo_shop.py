"""The demo's dbt Core part: a copy of ``examples/shop`` kept fresh by real dbt on the demo's
DuckDB file, one last build after the stream, and its ``daily_revenue`` next to the raw table."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import duckdb
from rich.console import Console
from rich.table import Table

from afterload.config.load import load_config

SHOP = Path(__file__).resolve().parents[2] / "examples" / "shop"
DBT_INTERVAL = 10


def dbt_core_available() -> str | None:
    """Why the demo cannot run dbt Core, or None when it can."""
    import importlib.util

    if (
        importlib.util.find_spec("dbt") is None
        or importlib.util.find_spec("dbt.adapters.duckdb") is None
    ):
        return "dbt Core is not installed (pip install 'afterload[dbt-duckdb]')"
    if not (SHOP / "dbt_project.yml").is_file():
        return f"the example project {SHOP} is not there (run the demo from a checkout)"
    return None


def dbt_core_block(workdir: Path) -> str:
    """The demo's ``dbt_core_trigger``: a copy of examples/shop (dbt writes into target/)."""
    shutil.copytree(SHOP, workdir / "shop", ignore=shutil.ignore_patterns("target", "logs"))
    return f"""\
dbt_core_trigger:
  project_dir: shop
  command: build
  mode: skip
  interval: {DBT_INTERVAL}s
"""


def catch_up(console: Console, config: Path) -> bool:
    """One last ``dbt build`` after the stream stopped, as ``afterload trigger --wait`` does."""
    from afterload.pipeline import dbt_core_action

    console.rule("3. dbt Core catches up with the last commit")
    action = dbt_core_action(load_config(config))

    async def build() -> bool:
        try:
            outcome = await action.fire()
            if outcome.run_id is None:
                console.print(f"[red]✗[/red] {outcome.message}", highlight=False)
                return False
            end = await action.wait(outcome, 300)
            mark = "[green]✓[/green]" if end.result == "success" else "[red]✗[/red]"
            console.print(f"{mark} {end.message}", highlight=False, soft_wrap=True)
            return end.result == "success"
        finally:
            await action.aclose()

    return asyncio.run(build())


def revenue(console: Console, warehouse: Path) -> None:
    """daily_revenue as dbt built it, next to the same figures straight from the raw table."""
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        found = con.execute(
            "WITH raw AS (SELECT cast(cast(created_at AS TIMESTAMPTZ) AS DATE) AS day, "
            "count(*) AS orders, round(sum(amount), 2) AS revenue FROM orders GROUP BY 1) "
            "SELECT coalesce(m.order_date, r.day), m.orders, m.revenue, "
            "coalesce(r.orders, 0), coalesce(r.revenue, 0) "
            "FROM daily_revenue m FULL JOIN raw r ON m.order_date = r.day ORDER BY 1"
        ).fetchall()
    finally:
        con.close()
    table = Table(
        title="daily_revenue (dbt, incremental) next to a count straight from orders",
        title_justify="left",
    )
    for col in ("day", "dbt orders", "dbt revenue", "raw orders", "raw revenue", ""):
        table.add_column(col, justify="right")
    same = 0
    for day, orders, revenue, raw_orders, raw_revenue in found:
        ok = orders == raw_orders and float(revenue or 0) == float(raw_revenue)
        same += ok
        mark = "[green]✓[/green]" if ok else "[red]✗[/red]"
        table.add_row(str(day), str(orders), str(revenue), str(raw_orders), str(raw_revenue), mark)
    console.print(table)
    verdict = "caught up" if same == len(found) else "NOT caught up"
    console.print(f"daily_revenue: {same} of {len(found)} days match the raw table: {verdict}")
