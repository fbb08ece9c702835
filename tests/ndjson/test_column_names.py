"""Property names a destination has no column for, or would store in one column: bad lines
naming file and line, judged per line (PostgreSQL once failed the whole commit on them)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from afterload.cli.run import run_materialization
from tests.materialize_support import Warehouse, write_config, write_lines

ORDERS = {"source": "data/*.jsonl", "table": "orders", "key": ["/id"], "rejects": "rej.jsonl"}


def rejected(tmp_path: Path) -> list[dict[str, Any]]:
    path = tmp_path / "rej.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_a_postgres_system_column_name_is_a_bad_line(tmp_path: Path, warehouse: Warehouse) -> None:
    loaded = write_config(tmp_path, [ORDERS], warehouse=warehouse)
    write_lines(
        tmp_path / "data/1.jsonl",
        [{"id": 1, "xmin": 1}, {"id": 2, "XMIN": 2}, {"id": 3, "tableoid": "x"}, {"id": 4}],
    )
    assert run_materialization(loaded, once=True) == 0
    ids = [r[0] for r in warehouse.rows("SELECT id FROM orders ORDER BY id")]
    if warehouse.kind == "duckdb":
        assert ids == [1, 3, 4]  # XMIN meets xmin there: DuckDB's names ignore case
        return
    assert ids == [2, 4]  # a quoted name is exact: XMIN is no system column
    found = [(r["source"], r["line"], r["reason"]) for r in rejected(tmp_path)]
    assert found == [
        (
            "data/1.jsonl",
            line,
            f"property {name!r} cannot be a column: PostgreSQL has a system column of that "
            "name in every table",
        )
        for line, name in ((1, "xmin"), (3, "tableoid"))
    ]


@pytest.mark.parametrize("warehouse", ["postgres"], indirect=True)
def test_a_name_meeting_a_stored_renamed_one_is_a_bad_line(
    tmp_path: Path, warehouse: Warehouse
) -> None:
    """PostgreSQL stores the property ``""`` as ``_e3b0c442``: a later property of that very
    name stopped the run with a word about names over 63 bytes and no file or line."""
    loaded = write_config(tmp_path, [ORDERS], warehouse=warehouse)
    write_lines(tmp_path / "data/1.jsonl", [{"id": 1, "": 1}])
    assert run_materialization(loaded, once=True) == 0
    write_lines(tmp_path / "data/1.jsonl", [{"id": 4, "_e3b0c442": "x"}, {"id": 5}], append=True)
    assert run_materialization(loaded, once=True) == 0
    assert warehouse.rows('SELECT id, "_e3b0c442" FROM orders ORDER BY id') == [(1, 1), (5, None)]
    ((source, line, reason),) = [(r["source"], r["line"], r["reason"]) for r in rejected(tmp_path)]
    assert (source, line) == ("data/1.jsonl", 2)
    assert reason == (
        "property '_e3b0c442' and property '' would both be column '_e3b0c442' "
        "(PostgreSQL stores '' as '_e3b0c442': no column can have the empty name)"
    )
