"""``store_document: false`` leaves ``flow_document`` out of a DuckDB table, and back in."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from rich.console import Console

from afterload.cli.run import run_materialization
from tests.materialize_support import Warehouse, rows, write_config, write_lines


def binding(store: bool) -> dict[str, Any]:
    return {"source": "data/*.jsonl", "table": "t", "key": ["/id"], "store_document": store}


def run(tmp_path: Path, store: bool, docs: list[Any], name: str) -> str:
    loaded = write_config(tmp_path, [binding(store)])
    write_lines(tmp_path / f"data/{name}.jsonl", docs)
    out = io.StringIO()
    code = run_materialization(loaded, once=True, console=Console(file=out, width=300))
    assert code == 0, out.getvalue()
    return out.getvalue()


def columns(db: Path) -> list[str]:
    return [
        str(r[0])
        for r in rows(
            db,
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_name = 't' ORDER BY ordinal_position",
        )
    ]


def test_the_document_column_can_be_left_out_and_brought_back(tmp_path: Path) -> None:
    db = tmp_path / "warehouse.duckdb"
    run(tmp_path, False, [{"id": 1, "v": "a"}, {"id": 2, "v": "b"}], "1")
    assert columns(db) == ["id", "v", "flow_published_at"]
    run(tmp_path, False, [{"id": 1, "v": "c"}], "2")  # a merge without the column
    assert rows(db, "SELECT id, v FROM t ORDER BY id") == [(1, "c"), (2, "b")]
    run(tmp_path, True, [{"id": 3, "v": "d"}], "3")  # back in: older rows hold NULL
    assert columns(db) == ["id", "v", "flow_published_at", "flow_document"]
    run(tmp_path, False, [{"id": 2, "v": "e"}], "4")  # out again: NULL from now on
    assert rows(db, "SELECT id, v, flow_document FROM t ORDER BY id") == [
        (1, "c", None),
        (2, "e", None),
        (3, "d", '{"id": 3, "v": "d"}'),
    ]


def test_the_default_stores_the_document(tmp_path: Path) -> None:
    db = tmp_path / "warehouse.duckdb"
    loaded = write_config(tmp_path, [{"source": "data/*.jsonl", "table": "t", "key": ["/id"]}])
    write_lines(tmp_path / "data/1.jsonl", [{"id": 1}])
    run_materialization(loaded, once=True, console=Console(file=io.StringIO()))
    assert rows(db, "SELECT flow_document FROM t") == [('{"id": 1}',)]


def test_postgres_refuses_the_option_in_one_sentence(tmp_path: Path) -> None:
    warehouse = Warehouse("postgres", tmp_path)
    loaded = write_config(tmp_path, [binding(False)], warehouse=warehouse)
    write_lines(tmp_path / "data/1.jsonl", [{"id": 1}])
    out = io.StringIO()
    try:
        code = run_materialization(loaded, once=True, console=Console(file=out, width=300))
    finally:
        warehouse.drop()
    assert code != 0
    text = out.getvalue()
    assert "t: store_document: false is not supported by" in text
    assert "Traceback" not in text
